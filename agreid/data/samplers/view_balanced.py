"""P×K identity sampler whose K images of an identity are split between aerial and non-aerial views."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from agreid.data.records import AERIAL, ImageRecord
from agreid.data.samplers.identity import IdentitySampler, take
from agreid.registries import SAMPLER_REGISTRY


@SAMPLER_REGISTRY.register()
class ViewBalancedIdentitySampler(IdentitySampler):
    """Like :class:`IdentitySampler`, but an identity seen from both aerial and other views gets ceil(K/2)
    images of one and floor(K/2) of the other in each group, alternating which view gets the extra one.

    Such an identity yields max(1, n // K) groups for n images; a view is drawn with replacement only
    when it has too few images. Identities seen from one side only are sampled as usual.
    """

    def __init__(self, records: Sequence[ImageRecord], batch_size: int, num_instances: int, world_size: int = 1,
                 rank: int = 0, seed: int = 0, iters_per_epoch: int = 1) -> None:
        super().__init__(records, batch_size, num_instances, world_size, rank, seed, iters_per_epoch)
        aerial = np.array([r.view == AERIAL for r in self.records], dtype=bool)
        self.aerial_index = {pid: idx[aerial[idx]] for pid, idx in self.pid_index.items()}
        self.other_index = {pid: idx[~aerial[idx]] for pid, idx in self.pid_index.items()}

    def identity_chunks(self, pid: int, rng: np.random.Generator) -> List[np.ndarray]:
        aer, other = self.aerial_index[pid], self.other_index[pid]
        if len(aer) == 0 or len(other) == 0:
            return super().identity_chunks(pid, rng)
        k = self.num_instances
        groups = max(1, len(self.pid_index[pid]) // k)
        first = int(rng.integers(2))
        aer_counts = [(k + 1) // 2 if (g + first) % 2 == 0 else k // 2 for g in range(groups)]
        aer_pick = take(rng.permutation(aer), sum(aer_counts), rng)
        other_pick = take(rng.permutation(other), groups * k - sum(aer_counts), rng)
        chunks, a, o = [], 0, 0
        for count in aer_counts:
            group = np.concatenate([aer_pick[a:a + count], other_pick[o:o + k - count]])
            chunks.append(rng.permutation(group))
            a, o = a + count, o + k - count
        return chunks
