"""CMC, mAP and mINP from a query×gallery distance matrix, without sorting gallery rows.

A positive's rank is counted, not found by sorting: per chunk of queries, the positives' distances
are sorted (a handful per query), gallery items are counted by uniform distance buckets, and only
items sharing a bucket with a positive are placed exactly, with exact ties broken by gallery order
(a stable sort). Memory is O(chunk × G) beyond the distance matrix; no Q×G sort index is built
(fast-reid#404), and the work is a few linear passes instead of a G·log G sort per query.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from agreid.evaluation.rules import RankMeta, resolve_rule

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]
CMC_MODES = ("standard", "unique_ids")

CHUNK_ELEMENTS = 1 << 22
"""Default number of query×gallery pairs ranked at once (about 4M pairs)."""


def _as_tensor(x: Optional[ArrayLike], device: torch.device) -> Optional[torch.Tensor]:
    if x is None:
        return None
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.reshape(-1).to(device)


def _as_dist(dist: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    if isinstance(dist, torch.Tensor):
        return dist.detach()
    return torch.from_numpy(np.ascontiguousarray(dist))


def _sorted_positives(block: torch.Tensor, pos: torch.Tensor, num_pos: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per row, the positives' distances in (distance, gallery index) order, padded with +inf.

    Returns ``(values, cols)`` of shape R×Pmax; padding columns hold +inf and index G.
    """
    rows, cols = pos.nonzero(as_tuple=True)
    offsets = torch.cumsum(num_pos, 0) - num_pos
    slot = torch.arange(rows.numel(), device=block.device) - offsets[rows]
    width = int(num_pos.max())
    values = torch.full((block.shape[0], width), float("inf"), dtype=block.dtype, device=block.device)
    index = torch.full((block.shape[0], width), block.shape[1], dtype=torch.long, device=block.device)
    values[rows, slot] = block[rows, cols]
    index[rows, slot] = cols
    values, order = torch.sort(values, dim=1, stable=True)
    return values, index.gather(1, order)


def _bucket(x: torch.Tensor, lo: torch.Tensor, scale: torch.Tensor, nbins: int, finite: bool) -> torch.Tensor:
    """Uniform bucket of each value in its row; monotone in the value, so buckets never reorder items."""
    b = (x - lo).mul_(scale)
    if not finite:
        b = torch.nan_to_num_(b, nan=0.0, posinf=nbins - 1, neginf=0.0)
    return b.clamp_(0, nbins - 1).long()


def _exact_places(values: torch.Tensor, rows: torch.Tensor, d: torch.Tensor, right: bool) -> torch.Tensor:
    return torch.searchsorted(values[rows], d[:, None], right=right).squeeze(1)


def _positive_ranks(block: torch.Tensor, keep: torch.Tensor, values: torch.Tensor, cols: torch.Tensor,
                    num_pos: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """1-based rank of each sorted positive among its row's kept items, without sorting the row.

    Items are bucketed uniformly between the row's extremes; an item in a bucket below a positive's
    bucket is certainly ranked before it, one above certainly after. Only items sharing a bucket
    with some positive are placed exactly (binary search among the positives, then gallery order
    for exact ties). Returns the ranks (R×Pmax) and the bucketing, reused for unique-id CMC.
    """
    num_rows, width = values.shape
    nbins = int(min(max(block.shape[1] // 4, 64), 1 << 16))
    lo, hi = block.amin(1, keepdim=True), block.amax(1, keepdim=True)
    finite = bool(torch.isfinite(lo).all() and torch.isfinite(hi).all())
    if not finite:
        clean = torch.where(torch.isfinite(block), block, torch.zeros((), dtype=block.dtype))
        lo, hi = clean.amin(1, keepdim=True), clean.amax(1, keepdim=True)
    scale = torch.where(hi > lo, nbins / (hi - lo), torch.zeros_like(hi))
    bins = _bucket(block, lo, scale, nbins, finite)
    real = torch.arange(width, device=block.device)[None, :] < num_pos[:, None]
    pos_bins = torch.where(real, _bucket(values, lo, scale, nbins, False), torch.full_like(cols, nbins - 1))
    has_pos = torch.zeros(num_rows, nbins, dtype=torch.bool, device=block.device)
    pr, pk = real.nonzero(as_tuple=True)
    has_pos[pr, pos_bins[pr, pk]] = True
    exact = has_pos.gather(1, bins) & keep
    coarse = torch.zeros(num_rows, nbins, dtype=torch.long, device=block.device)
    coarse.scatter_add_(1, bins, (keep & ~exact).long())
    below = (torch.cumsum(coarse, 1) - coarse).gather(1, pos_bins)

    r, g = exact.nonzero(as_tuple=True)
    d = block[r, g]
    right = _exact_places(values, r, d, right=True)
    fine = torch.zeros(num_rows, width + 1, dtype=torch.long, device=block.device)
    fine.index_put_((r, right), torch.ones_like(right), accumulate=True)
    ranks = below + torch.cumsum(fine, 1)[:, :-1] + 1
    left = _exact_places(values, r, d, right=False)
    tied = left != right
    if bool(tied.any()):
        r_t, g_t, lo_t, span = r[tied], g[tied], left[tied], (right - left)[tied]
        rr, gg = r_t.repeat_interleave(span), g_t.repeat_interleave(span)
        offset = torch.arange(int(span.sum()), device=block.device) - \
            (torch.cumsum(span, 0) - span).repeat_interleave(span)
        k = lo_t.repeat_interleave(span) + offset
        before = gg < cols[rr, k]
        ranks.index_put_((rr[before], k[before]), torch.ones_like(k[before]), accumulate=True)
    return ranks, {"bins": bins, "pos_bins": pos_bins, "rows": r, "cols": g, "right": right, "left": left}


def _unique_id_first_rank(keep: torch.Tensor, cols: torch.Tensor, bucketing: Dict[str, torch.Tensor],
                          g_ids: torch.Tensor, num_ids: int) -> torch.Tensor:
    """Rank of the first correct identity when gallery identities are de-duplicated in rank order."""
    before = keep & (bucketing["bins"] < bucketing["pos_bins"][:, :1])
    r, g = bucketing["rows"], bucketing["cols"]
    first_exact = (bucketing["right"] == 0) | ((bucketing["left"] == 0) & (g < cols[r, 0]))
    before[r[first_exact], g[first_exact]] = True
    seen = torch.zeros(keep.shape[0], num_ids, dtype=torch.bool, device=keep.device)
    rows, items = before.nonzero(as_tuple=True)
    seen[rows, g_ids[items]] = True
    return seen.sum(1) + 1


def evaluate_ranking(dist: Union[np.ndarray, torch.Tensor], q_pids: ArrayLike, g_pids: ArrayLike,
                     q_camids: ArrayLike, g_camids: ArrayLike,
                     rule: Union[str, Callable[..., torch.Tensor]] = "market",
                     q_views: Optional[ArrayLike] = None, g_views: Optional[ArrayLike] = None,
                     max_rank: int = 50, *, q_times: Optional[ArrayLike] = None,
                     g_times: Optional[ArrayLike] = None, cmc_mode: str = "standard",
                     chunk_size: Optional[int] = None) -> Dict[str, object]:
    """Rank the gallery for every query (smaller distance first) and return CMC, mAP and mINP.

    Each query ranks only the gallery items its ``rule`` keeps (a registered name, names joined by
    ``+``, or a function ``(q, g) -> keep``); ties are broken by gallery order. Queries with no
    positive left are skipped. Returns ``cmc`` (numpy array of length ``max_rank``: the fraction of
    valid queries whose first match is within rank k+1, padded with its last value past the
    gallery), ``mAP``, ``mINP`` (fractions) and ``num_valid``. ``cmc_mode="unique_ids"`` ranks the
    first match among de-duplicated gallery identities (SYSU-MM01, LLCM); mAP and mINP are unchanged.
    """
    dist_t = _as_dist(dist)
    if dist_t.dim() != 2:
        raise ValueError(f"dist must be a 2-D query×gallery matrix, got shape {tuple(dist_t.shape)}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if cmc_mode not in CMC_MODES:
        raise ValueError(f"cmc_mode must be one of {CMC_MODES}, got {cmc_mode!r}")
    num_q, num_g = dist_t.shape
    device = dist_t.device
    q = RankMeta(_as_tensor(q_pids, device), _as_tensor(q_camids, device), _as_tensor(q_views, device),
                 _as_tensor(q_times, device))
    g = RankMeta(_as_tensor(g_pids, device), _as_tensor(g_camids, device), _as_tensor(g_views, device),
                 _as_tensor(g_times, device))
    for side, meta, n in (("q", q, num_q), ("g", g, num_g)):
        for field in ("pids", "camids", "views", "times"):
            t = getattr(meta, field)
            if t is not None and t.numel() != n:
                raise ValueError(f"{side}_{field} has {t.numel()} entries but dist has shape {num_q}×{num_g}")
    rule_fn = resolve_rule(rule)
    g_ids, num_ids = None, 0
    if cmc_mode == "unique_ids":
        uniq, g_ids = torch.unique(g.pids, return_inverse=True)
        num_ids = int(uniq.numel())
    step = chunk_size or max(1, CHUNK_ELEMENTS // max(num_g, 1))

    first_hits = torch.zeros(max_rank, dtype=torch.long, device=device)
    query_ap = torch.zeros(num_q, dtype=torch.float64, device=device)
    query_inp = torch.zeros(num_q, dtype=torch.float64, device=device)
    num_valid = 0
    for start in range(0, num_q, step):
        stop = min(start + step, num_q)
        block = dist_t[start:stop]
        if not block.is_floating_point() or block.dtype in (torch.float16, torch.bfloat16):
            block = block.float() if block.is_floating_point() else block.double()
        if bool(torch.isnan(block.amax(1)).any()):
            raise ValueError(f"dist contains NaN in query rows {start}..{stop - 1} (diverged features?)")
        keep = rule_fn(q[start:stop], g)
        if keep.dtype != torch.bool or tuple(keep.shape) != (stop - start, num_g):
            raise ValueError(f"gallery rule {rule!r} returned {keep.dtype} {tuple(keep.shape)}, "
                             f"expected a bool mask of shape {(stop - start, num_g)}")
        pos = keep & (q.pids[start:stop, None] == g.pids[None, :])
        num_pos = pos.sum(1)
        valid = num_pos > 0
        if not bool(valid.any()):
            continue
        rows = torch.arange(start, stop, device=device)
        if not bool(valid.all()):
            rows, block, keep, pos, num_pos = rows[valid], block[valid], keep[valid], pos[valid], num_pos[valid]
        values, cols = _sorted_positives(block, pos, num_pos)
        ranks, bucketing = _positive_ranks(block, keep, values, cols, num_pos)
        slots = torch.arange(ranks.shape[1], device=device)[None, :]
        real = slots < num_pos[:, None]
        precision = (slots + 1).double() / ranks.double()
        query_ap[rows] = (precision * real).sum(1) / num_pos.double()
        last = ranks.gather(1, (num_pos - 1)[:, None]).squeeze(1)
        query_inp[rows] = num_pos.double() / last.double()
        if cmc_mode == "unique_ids":
            first = _unique_id_first_rank(keep, cols, bucketing, g_ids, num_ids)
        else:
            first = ranks[:, 0]
        first_hits += torch.bincount(first[first <= max_rank] - 1, minlength=max_rank)
        num_valid += int(num_pos.numel())

    if num_valid == 0:
        raise ValueError(f"No query has a positive gallery item left after the '{rule}' removal rule "
                         f"({num_q} queries, {num_g} gallery items); check the protocol's pids and camids.")
    cmc = (torch.cumsum(first_hits, dim=0).double() / num_valid).cpu().numpy()
    return {"cmc": np.minimum(cmc, 1.0), "mAP": float(query_ap.sum()) / num_valid,
            "mINP": float(query_inp.sum()) / num_valid, "num_valid": num_valid}
