"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) with chunked top-k and sparse Jaccard kernels in torch.

Gives the distances of the widely used ``re_ranking.py`` (torchreid, fast-reid, person-re-ranking) to
float32 rounding while never holding a dense (Q+G)² matrix besides the three input blocks.
"""
from __future__ import annotations

from typing import Iterator, Tuple, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]

CHUNK_ELEMENTS = 1 << 23
"""Entries per working block (distance rows, neighbour comparisons, sparse rows), bounding temporaries."""

JOIN_PAIRS = 1 << 18
"""Query-entry × gallery-entry pairs joined per Jaccard block (small enough to stay in cache)."""

TRANSPOSE_TILE = 512
"""Source rows per tile when copying a column block transposed."""


def _square32(x: torch.Tensor) -> torch.Tensor:
    """Square in the input precision, then cast to float32, as ``np.power(d, 2).astype(float32)`` does."""
    return x.mul_(x) if x.dtype == torch.float32 else (x * x).to(torch.float32)


def _copy_columns(out: torch.Tensor, src: torch.Tensor, lo: int, hi: int) -> None:
    """``out.copy_(src[:, lo:hi].t())`` in row tiles, several times faster than one strided copy on CPU."""
    for row in range(0, src.shape[0], TRANSPOSE_TILE):
        out[:, row:row + TRANSPOSE_TILE].copy_(src[row:row + TRANSPOSE_TILE, lo:hi].t())


class _TransposedDistance:
    """The original's normalised (Q+G)² matrix, read row by row or entry by entry from its three blocks.

    The original divides the squared concatenation by its column maxima and transposes, so row ``i``
    here is column ``i`` of the concatenation, i.e. rows of ``[[q_q.T, q_g], [q_g.T, g_g.T]]``.
    """

    def __init__(self, q_g: torch.Tensor, q_q: torch.Tensor, g_g: torch.Tensor) -> None:
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.num_q, self.num_g = q_g.shape
        self.num = self.num_q + self.num_g
        self.device = q_g.device
        self.row_max = torch.empty(self.num, dtype=torch.float32, device=self.device)

    def row_chunks(self, rows: int) -> Iterator[Tuple[int, int]]:
        """Yield ``[start, stop)`` row ranges of at most ``rows``, never straddling the query/gallery split."""
        for lo, hi in ((0, self.num_q), (self.num_q, self.num)):
            for start in range(lo, hi, rows):
                yield start, min(start + rows, hi)

    def squared_rows(self, start: int, stop: int) -> torch.Tensor:
        """Unnormalised squared rows ``[start, stop)`` (all on one side of the split) as a float32 block."""
        block = torch.empty(stop - start, self.num, dtype=self.q_g.dtype, device=self.device)
        if stop <= self.num_q:
            _copy_columns(block[:, :self.num_q], self.q_q, start, stop)
            block[:, self.num_q:].copy_(self.q_g[start:stop])
        else:
            lo, hi = start - self.num_q, stop - self.num_q
            _copy_columns(block[:, :self.num_q], self.q_g, lo, hi)
            _copy_columns(block[:, self.num_q:], self.g_g, lo, hi)
        return _square32(block)

    def entries(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Normalised distances at the index pairs ``(rows, cols)`` (1-D, same length); needs ``row_max``."""
        nq = self.num_q
        out = torch.empty(rows.shape, dtype=self.q_g.dtype, device=self.device)
        q_row, q_col = rows < nq, cols < nq
        for mask, block, r, c in ((q_row & q_col, self.q_q, cols, rows),
                                  (q_row & ~q_col, self.q_g, rows, cols - nq),
                                  (~q_row & q_col, self.q_g, cols, rows - nq),
                                  (~q_row & ~q_col, self.g_g, cols - nq, rows - nq)):
            out[mask] = block[r[mask], c[mask]]
        return _square32(out).div_(self.row_max[rows])


def _nearest(dist: _TransposedDistance, width: int) -> torch.Tensor:
    """The ``width`` nearest columns of every row, sorted by distance; also fills ``dist.row_max``."""
    neighbours = torch.empty(dist.num, width, dtype=torch.long, device=dist.device)
    for start, stop in dist.row_chunks(max(1, CHUNK_ELEMENTS // dist.num)):
        block = dist.squared_rows(start, stop)
        row_max = block.amax(dim=1)
        dist.row_max[start:stop] = row_max
        block.div_(row_max[:, None])
        neighbours[start:stop] = torch.topk(block, width, dim=1, largest=False, sorted=True).indices
    return neighbours


def _rows_of(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a 2-D table via ``index_select``, much faster than advanced indexing on CPU."""
    return table.index_select(0, index.flatten()).view(*index.shape, *table.shape[1:])


def _reciprocal(forward: torch.Tensor) -> torch.Tensor:
    """``mask[i, a]``: row ``i`` is among the forward neighbours of its neighbour ``forward[i, a]``."""
    num, width = forward.shape
    mask = torch.empty(num, width, dtype=torch.bool, device=forward.device)
    step = max(1, CHUNK_ELEMENTS // (width * width))
    for start in range(0, num, step):
        stop = min(start + step, num)
        own = torch.arange(start, stop, device=forward.device)[:, None, None]
        mask[start:stop] = (_rows_of(forward, forward[start:stop]) == own).any(dim=2)
    return mask


def _dedup_sorted(idx: torch.Tensor, num: int) -> torch.Tensor:
    """Sort each row, replace repeats by the sentinel ``num`` and sort again so members come first."""
    idx = idx.sort(dim=1).values
    repeat = torch.zeros_like(idx, dtype=torch.bool)
    repeat[:, 1:] = idx[:, 1:] == idx[:, :-1]
    return idx.masked_fill_(repeat, num).sort(dim=1).values


def _trim(idx: torch.Tensor, val: torch.Tensor, num: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Drop trailing columns that hold only sentinels."""
    width = int((idx < num).sum(dim=1).max().item()) if idx.numel() else 0
    return idx[:, :width].contiguous(), val[:, :width].contiguous()


def _pad_cat(parts: list, num: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stack per-chunk padded sparse rows of varying width into one padded (index, value) pair."""
    width = max(idx.shape[1] for idx, _ in parts)
    pad = [(torch.nn.functional.pad(idx, (0, width - idx.shape[1]), value=num),
            torch.nn.functional.pad(val, (0, width - val.shape[1]))) for idx, val in parts]
    return torch.cat([p[0] for p in pad]), torch.cat([p[1] for p in pad])


def _expanded_weights(dist: _TransposedDistance, neighbours: torch.Tensor, k1: int
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sparse rows of V: exp(-d) over each row's k-reciprocal expansion set, normalised to sum 1.

    Returned as padded (index, value) arrays; padding holds index ``num`` and value 0.
    """
    num = dist.num
    forward = neighbours[:, :min(k1 + 1, num)].contiguous()
    half = neighbours[:, :min(int(np.around(k1 / 2.0)) + 1, num)].contiguous()
    in_forward, in_half = _reciprocal(forward), _reciprocal(half)
    kf, kh = forward.shape[1], half.shape[1]
    parts = []
    step = max(1, CHUNK_ELEMENTS // (kf * kh * kf))
    for start in range(0, num, step):
        stop = min(start + step, num)
        fwd, rec = forward[start:stop], in_forward[start:stop]
        cand, cand_rec = _rows_of(half, fwd), _rows_of(in_half, fwd) & rec[:, :, None]
        shared = ((cand[..., None] == fwd[:, None, None, :]) & rec[:, None, None, :]).any(dim=3)
        overlap = (shared & cand_rec).sum(dim=2).double()
        accept = overlap > (2.0 / 3) * cand_rec.sum(dim=2).double()
        members = torch.cat([fwd.masked_fill(~rec, num),
                             cand.masked_fill(~(cand_rec & accept[..., None]), num).flatten(1)], dim=1)
        idx = _dedup_sorted(members, num)
        idx = idx[:, :max(1, int((idx < num).sum(dim=1).max().item()))]
        valid = idx < num
        rows = torch.arange(start, stop, device=dist.device)[:, None].expand_as(idx)
        weight = torch.zeros(idx.shape, dtype=torch.float32, device=dist.device)
        weight[valid] = torch.exp(-dist.entries(rows[valid], idx[valid]))
        total = weight.sum(dim=1, keepdim=True)
        parts.append((idx, weight / torch.where(total > 0, total, torch.ones_like(total))))
    return _pad_cat(parts, num)


def _query_expansion(idx: torch.Tensor, val: torch.Tensor, neighbours: torch.Tensor, k2: int
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sparse local query expansion: each row of V becomes the mean of the rows of its ``k2`` nearest."""
    num = idx.shape[0]
    near = neighbours[:, :min(k2, neighbours.shape[1])]
    width = near.shape[1] * idx.shape[1]
    parts = []
    step = max(1, CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, num, step):
        rows = near[start:start + step]
        cols, order = _rows_of(idx, rows).flatten(1).sort(dim=1)
        vals = _rows_of(val, rows).flatten(1).gather(1, order)
        first = torch.ones_like(cols, dtype=torch.bool)
        first[:, 1:] = cols[:, 1:] != cols[:, :-1]
        group = first.cumsum(dim=1) - 1
        summed = torch.zeros_like(vals).scatter_add_(1, group, vals).div_(near.shape[1])
        merged = torch.full_like(cols, num).scatter_(1, group, cols)
        parts.append(_trim(merged, summed, num))
    return _pad_cat(parts, num)


def _jaccard_final(dist: _TransposedDistance, idx: torch.Tensor, val: torch.Tensor,
                   lambda_value: float) -> torch.Tensor:
    """Q×G final distance: Jaccard of sparse V rows (query vs gallery) blended with the normalised distance.

    Gallery rows are inverted by column; each query entry (k, v) is joined with every gallery entry
    of column k and min(v, w) is scatter-added into a block of query rows × gallery columns.
    """
    nq, ng, num, device = dist.num_q, dist.num_g, dist.num, dist.device
    width = idx.shape[1]
    g_cols, order = idx[nq:].flatten().sort()
    g_rows = torch.div(order, width, rounding_mode="floor")
    g_vals = val[nq:].flatten().index_select(0, order)
    counts = torch.bincount(g_cols, minlength=num + 1)
    counts[num] = 0
    col_start = torch.cumsum(counts, 0) - counts

    q_pairs = counts.index_select(0, idx[:nq].flatten()).view(nq, width).sum(dim=1).tolist()
    out = torch.empty(nq, ng, dtype=torch.float32, device=device)
    max_rows = max(1, CHUNK_ELEMENTS // max(ng, 1))
    start = 0
    while start < nq:
        stop, budget = start + 1, q_pairs[start]
        while stop < nq and stop - start < max_rows and budget + q_pairs[stop] <= JOIN_PAIRS:
            budget += q_pairs[stop]
            stop += 1
        cols, vals = idx[start:stop].flatten(), val[start:stop].flatten()
        n_pairs = counts.index_select(0, cols)
        total = sum(q_pairs[start:stop])
        entry = torch.repeat_interleave(n_pairs, output_size=total)
        shift = col_start.index_select(0, cols).sub_(torch.cumsum(n_pairs, 0).sub_(n_pairs))
        pos = torch.arange(total, device=device).add_(shift.index_select(0, entry))
        contrib = torch.minimum(vals.index_select(0, entry), g_vals.index_select(0, pos))
        base = torch.arange(stop - start, device=device).mul_(ng)[:, None].expand(-1, width).flatten()
        target = base.index_select(0, entry).add_(g_rows.index_select(0, pos))
        temp_min = torch.zeros((stop - start) * ng, dtype=torch.float32, device=device)
        temp_min.index_add_(0, target, contrib)
        temp_min = temp_min.view(stop - start, ng)
        jaccard = 1 - temp_min / (2.0 - temp_min)
        original = _square32(dist.q_g[start:stop].clone()).div_(dist.row_max[start:stop, None])
        out[start:stop] = jaccard.mul_(1 - lambda_value).add_(original.mul_(lambda_value))
        start = stop
    return out


def _as_tensor(x: Array, name: str, shape: Tuple[int, int], device: torch.device) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    return t.to(device)


def _common_float(*blocks: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Cast the blocks to one floating dtype (float64 for integer distances), copying only when needed."""
    dtype = torch.promote_types(torch.promote_types(blocks[0].dtype, blocks[1].dtype), blocks[2].dtype)
    dtype = dtype if dtype.is_floating_point else torch.float64
    return tuple(b.to(dtype) for b in blocks)


def re_ranking(q_g_dist: Array, q_q_dist: Array, g_g_dist: Array, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3) -> Array:
    """Return the k-reciprocal re-ranked Q×G float32 distance (numpy in gives numpy, tensor in gives tensor).

    Inputs are the Q×G, Q×Q and G×G distances of the original algorithm, which this reproduces to
    float32 rounding. Runs on the device of ``q_g_dist`` in chunks (sorted ``topk`` instead of a full
    argsort, sparse V, inverted-index Jaccard for the query rows only). On exactly tied distances
    ``topk`` and numpy's argsort may order neighbours differently, so results can differ there;
    with real-valued features ties do not occur in practice.
    """
    if k1 < 0 or k2 < 1:
        raise ValueError(f"re_ranking needs k1 >= 0 and k2 >= 1, got k1={k1}, k2={k2}")
    as_numpy = not isinstance(q_g_dist, torch.Tensor)
    device = torch.device("cpu") if as_numpy else q_g_dist.device
    num_q, num_g = tuple(np.shape(q_g_dist)) if as_numpy else tuple(q_g_dist.shape)
    dist = _TransposedDistance(*_common_float(_as_tensor(q_g_dist, "q_g_dist", (num_q, num_g), device),
                                              _as_tensor(q_q_dist, "q_q_dist", (num_q, num_q), device),
                                              _as_tensor(g_g_dist, "g_g_dist", (num_g, num_g), device)))
    if num_q == 0 or num_g == 0:
        empty = torch.empty(num_q, num_g, dtype=torch.float32, device=device)
        return empty.numpy() if as_numpy else empty
    half = int(np.around(k1 / 2.0))
    neighbours = _nearest(dist, min(max(k1 + 1, half + 1, k2), dist.num))
    idx, val = _expanded_weights(dist, neighbours, k1)
    if k2 != 1:
        idx, val = _query_expansion(idx, val, neighbours, k2)
    del neighbours
    final = _jaccard_final(dist, idx, val, lambda_value)
    return final.numpy() if as_numpy else final
