"""Average query expansion (fast-reid's AQE): smooth every feature with its most similar neighbours."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

Array = Union[np.ndarray, torch.Tensor]

CHUNK_ELEMENTS = 1 << 24
"""Similarity entries computed per block, so memory stays O(chunk × (Q+G))."""


def _expand_once(feats: torch.Tensor, k: int, alpha: float, rows: int) -> torch.Tensor:
    """One pass: each normalised row becomes the sim^alpha-weighted mean of its top-k rows, renormalised."""
    out = torch.empty_like(feats)
    for start in range(0, feats.shape[0], rows):
        sims = feats[start:start + rows] @ feats.t()
        top_sims, top_idx = torch.topk(sims, k, dim=1)
        del sims
        weights = top_sims.clamp_(min=0).pow_(alpha)
        neighbours = feats.index_select(0, top_idx.flatten()).view(*top_idx.shape, feats.shape[1])
        pooled = torch.bmm(weights.unsqueeze(1), neighbours).squeeze(1)
        out[start:start + rows] = F.normalize(pooled, dim=1)
    return out


def _as_tensor(x: Array) -> torch.Tensor:
    return x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def average_query_expansion(query_feats: Array, gallery_feats: Array, k: int = 5, alpha: float = 3.0,
                            times: int = 1, *, chunk_size: Optional[int] = None) -> Tuple[Array, Array]:
    """Return L2-normalised (query, gallery) features after ``times`` rounds of average query expansion.

    Each round replaces every (normalised) query or gallery feature by the mean of its
    ``k`` most cosine-similar features (itself included) weighted by max(sim, 0)^alpha, L2-normalised;
    the weights' sum is irrelevant after normalisation. Numpy in gives numpy out; ``chunk_size`` is the
    number of rows whose similarities are held at once.
    """
    if k < 1 or times < 0:
        raise ValueError(f"average_query_expansion needs k >= 1 and times >= 0, got k={k}, times={times}")
    as_numpy = not isinstance(query_feats, torch.Tensor)
    qf, gf = _as_tensor(query_feats), _as_tensor(gallery_feats)
    gf = gf.to(qf.device)
    if qf.dim() != 2 or gf.dim() != 2 or qf.shape[1] != gf.shape[1]:
        raise ValueError(f"Need (num, dim) features of equal width, got {tuple(qf.shape)}, {tuple(gf.shape)}")
    dtype = torch.promote_types(qf.dtype, gf.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float32
    feats = F.normalize(torch.cat([qf.to(dtype), gf.to(dtype)]), dim=1)
    num = feats.shape[0]
    k = min(k, num)
    rows = chunk_size or max(1, CHUNK_ELEMENTS // max(num, k * feats.shape[1], 1))
    for _ in range(times if num else 0):
        feats = _expand_once(feats, k, alpha, rows)
    query, gallery = feats[:qf.shape[0]], feats[qf.shape[0]:]
    return (query.numpy(), gallery.numpy()) if as_numpy else (query, gallery)
