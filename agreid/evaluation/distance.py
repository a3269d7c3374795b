"""Query×gallery distance matrices (cosine, squared euclidean, negative inner product), built in row blocks."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

METRICS = ("cosine", "euclidean", "inner")

CHUNK_ELEMENTS = 1 << 24
"""Default number of query×gallery entries computed per block, bounding the temporaries."""


def _as_feats(x: Union[np.ndarray, torch.Tensor], name: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D (num, dim) matrix, got shape {tuple(t.shape)}")
    return t if t.is_floating_point() else t.float()


def compute_distance(query_feats: Union[np.ndarray, torch.Tensor],
                     gallery_feats: Union[np.ndarray, torch.Tensor], metric: str = "cosine",
                     normalize: bool = False, *, chunk_size: Optional[int] = None) -> torch.Tensor:
    """Return the Q×G distance matrix (smaller means more similar) on the query features' device.

    ``cosine`` is 1 − cosine similarity, ``euclidean`` the squared euclidean distance (clamped at 0)
    and ``inner`` the negative inner product. ``normalize`` L2-normalises both sides first (the
    CLIP-ReID ``FEAT_NORM`` convention); cosine always normalises. The result has the features'
    floating dtype (float32 for float32 features). ``chunk_size`` is the number of query rows per block.
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown distance metric '{metric}'; choose one of {', '.join(METRICS)}")
    qf, gf = _as_feats(query_feats, "query_feats"), _as_feats(gallery_feats, "gallery_feats")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"Feature widths differ: query {qf.shape[1]} vs gallery {gf.shape[1]}")
    dtype = torch.promote_types(qf.dtype, gf.dtype)
    qf, gf = qf.to(dtype), gf.to(device=qf.device, dtype=dtype)
    if normalize or metric == "cosine":
        qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    num_q, num_g = qf.shape[0], gf.shape[0]
    out = torch.empty(num_q, num_g, dtype=dtype, device=qf.device)
    step = chunk_size or max(1, CHUNK_ELEMENTS // max(num_g, 1))
    g_sq = gf.pow(2).sum(dim=1) if metric == "euclidean" else None
    for start in range(0, num_q, step):
        q = qf[start:start + step]
        block = out[start:start + step]
        torch.matmul(q, gf.t(), out=block)
        if metric == "cosine":
            block.neg_().add_(1.0)
        elif metric == "inner":
            block.neg_()
        else:
            block.mul_(-2.0).add_(q.pow(2).sum(dim=1, keepdim=True)).add_(g_sq[None, :]).clamp_(min=0.0)
    return out
