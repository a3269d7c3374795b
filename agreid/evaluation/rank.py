"""CMC, mAP and mINP from a query×gallery distance matrix, ranked in chunks of queries.

Only one chunk×G block is sorted at a time, so peak memory is O(chunk × G) on top of the
distance matrix itself (no Q×G sort index as in fast-reid's ranking, JDAI-CV/fast-reid#404).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Union

import numpy as np
import torch

from agreid.registries import GALLERY_RULE_REGISTRY

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]

CHUNK_ELEMENTS = 1 << 22
"""Default number of query×gallery pairs ranked at once (about 4M pairs, a few tens of MB)."""


def _as_tensor(x: ArrayLike, device: torch.device) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.reshape(-1).to(device)


def _as_dist(dist: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    if isinstance(dist, torch.Tensor):
        return dist.detach()
    return torch.from_numpy(np.ascontiguousarray(dist))


def _resolve_rule(rule: Union[str, Callable[..., torch.Tensor]]) -> Callable[..., torch.Tensor]:
    if callable(rule):
        return rule
    import agreid.evaluation.rules  # noqa: F401  (registers the built-in rules)

    return GALLERY_RULE_REGISTRY.get(rule)


def _chunk_positive_ranks(dist: torch.Tensor, keep: torch.Tensor, pos: torch.Tensor):
    """Rank one chunk: for each query with a positive, the 1-based ranks of its positives among kept items.

    Returns ``(valid, row, rank, num_pos)``: ``valid`` flags the chunk rows that have a positive, and for
    those rows only, ``rank[i]`` is the rank of the i-th positive (rows in order, ranks ascending within a
    row), ``row[i]`` its row among the valid rows and ``num_pos`` the positive count per valid row.
    """
    order = torch.sort(dist, dim=1, stable=True).indices
    pos_sorted = pos.gather(1, order)
    num_pos = pos_sorted.sum(dim=1)
    valid = num_pos > 0
    if not bool(valid.any()):
        empty = torch.zeros(0, dtype=torch.long, device=dist.device)
        return valid, empty, empty, num_pos[valid]
    kept_rank = keep[valid].gather(1, order[valid]).cumsum(dim=1, dtype=torch.int32)
    row, col = pos_sorted[valid].nonzero(as_tuple=True)
    return valid, row, kept_rank[row, col].long(), num_pos[valid]


def _query_scores(row: torch.Tensor, rank: torch.Tensor, num_pos: torch.Tensor):
    """Per valid query: AP (mean precision at each positive), INP (positives / rank of the last) and first rank."""
    offsets = torch.cumsum(num_pos, dim=0) - num_pos
    ordinal = torch.arange(rank.numel(), device=rank.device) - offsets[row] + 1
    precision = ordinal.double() / rank.double()
    count = num_pos.double()
    ap = torch.zeros(num_pos.numel(), dtype=torch.float64, device=rank.device).index_add_(0, row, precision)
    inp = count / rank[offsets + num_pos - 1].double()
    return ap / count, inp, rank[offsets]


def evaluate_ranking(dist: Union[np.ndarray, torch.Tensor], q_pids: ArrayLike, g_pids: ArrayLike,
                     q_camids: ArrayLike, g_camids: ArrayLike,
                     rule: Union[str, Callable[..., torch.Tensor]] = "market",
                     q_views: Optional[ArrayLike] = None, g_views: Optional[ArrayLike] = None,
                     max_rank: int = 50, *, chunk_size: Optional[int] = None) -> Dict[str, object]:
    """Rank the gallery for every query (smaller distance first) and return CMC, mAP and mINP.

    Each query ranks only the gallery items its ``rule`` (a name in ``GALLERY_RULE_REGISTRY`` or a
    rule function) keeps; ties are broken by gallery order. Queries with no positive left are skipped
    and not counted. Returns ``cmc`` (float64 numpy array of length ``max_rank``, fractions of valid
    queries whose first positive lies within rank k+1), ``mAP`` and ``mINP`` (fractions) and
    ``num_valid``. When ``max_rank`` exceeds the gallery, the CMC keeps its length: entries past the
    last rank hold the final value, which is exactly the CMC there (1.0). Everything runs on
    ``dist``'s device; ``chunk_size`` (queries per block) defaults to about 4M pairs per block.
    """
    dist_t = _as_dist(dist)
    if dist_t.dim() != 2:
        raise ValueError(f"dist must be a 2-D query×gallery matrix, got shape {tuple(dist_t.shape)}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    num_q, num_g = dist_t.shape
    device = dist_t.device
    qp, gp = _as_tensor(q_pids, device), _as_tensor(g_pids, device)
    qc, gc = _as_tensor(q_camids, device), _as_tensor(g_camids, device)
    qv = None if q_views is None else _as_tensor(q_views, device)
    gv = None if g_views is None else _as_tensor(g_views, device)
    for name, t, n in (("q_pids", qp, num_q), ("q_camids", qc, num_q), ("q_views", qv, num_q),
                       ("g_pids", gp, num_g), ("g_camids", gc, num_g), ("g_views", gv, num_g)):
        if t is not None and t.numel() != n:
            raise ValueError(f"{name} has {t.numel()} entries but dist has shape {num_q}×{num_g}")
    rule_fn = _resolve_rule(rule)
    step = chunk_size or max(1, CHUNK_ELEMENTS // max(num_g, 1))

    first_hits = torch.zeros(max_rank, dtype=torch.long, device=device)
    query_ap = torch.zeros(num_q, dtype=torch.float64, device=device)
    query_inp = torch.zeros(num_q, dtype=torch.float64, device=device)
    num_valid = 0
    for start in range(0, num_q, step):
        stop = min(start + step, num_q)
        block = dist_t[start:stop]
        if block.is_floating_point() and bool(torch.isnan(block).any()):
            raise ValueError(f"dist contains NaN in query rows {start}..{stop - 1} (diverged features?)")
        keep = rule_fn(qp[start:stop], gp, qc[start:stop], gc,
                       None if qv is None else qv[start:stop], gv)
        if keep.dtype != torch.bool or tuple(keep.shape) != (stop - start, num_g):
            raise ValueError(f"gallery rule {rule!r} returned {keep.dtype} {tuple(keep.shape)}, "
                             f"expected a bool mask of shape {(stop - start, num_g)}")
        pos = keep & (qp[start:stop, None] == gp[None, :])
        valid, row, rank, num_pos = _chunk_positive_ranks(block, keep, pos)
        n = int(num_pos.numel())
        if n == 0:
            continue
        num_valid += n
        rows = torch.arange(start, stop, device=device)[valid]
        query_ap[rows], query_inp[rows], first = _query_scores(row, rank, num_pos)
        first_hits += torch.bincount(first[first <= max_rank] - 1, minlength=max_rank)

    if num_valid == 0:
        raise ValueError(f"No query has a positive gallery item left after the '{rule}' removal rule "
                         f"({num_q} queries, {num_g} gallery items); check the protocol's pids and camids.")
    cmc = (torch.cumsum(first_hits, dim=0).double() / num_valid).cpu().numpy()
    return {"cmc": np.minimum(cmc, 1.0), "mAP": float(query_ap.sum()) / num_valid,
            "mINP": float(query_inp.sum()) / num_valid, "num_valid": num_valid}
