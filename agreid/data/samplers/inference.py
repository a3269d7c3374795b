"""Deterministic contiguous sharding of an evaluation list across ranks."""
from __future__ import annotations

from typing import Iterator, List

from torch.utils.data import Sampler


class InferenceSampler(Sampler):
    """Rank r gets items [r·s, (r+1)·s) with s = ceil(N / world), in order and in batches of ``batch_size``.

    Concatenating the ranks' outputs in rank order restores the original order; the last ranks may
    get fewer items, or none.
    """

    def __init__(self, num_items: int, batch_size: int, world_size: int = 1, rank: int = 0) -> None:
        super().__init__()
        if num_items < 0 or batch_size < 1:
            raise ValueError(f"InferenceSampler needs num_items >= 0 and batch_size >= 1, "
                             f"got {num_items} and {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"Invalid rank {rank} for world size {world_size}")
        shard = -(-num_items // world_size)
        self.start = min(rank * shard, num_items)
        self.end = min(self.start + shard, num_items)
        self.batch_size = int(batch_size)

    def __iter__(self) -> Iterator[List[int]]:
        for s in range(self.start, self.end, self.batch_size):
            yield list(range(s, min(s + self.batch_size, self.end)))

    def __len__(self) -> int:
        return -(-(self.end - self.start) // self.batch_size)
