"""Plain shuffled batches, for training with a classification loss alone."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from agreid.data.records import ImageRecord
from agreid.data.samplers.base import STREAM_ORDER, TrainBatchSampler, epoch_rng
from agreid.registries import SAMPLER_REGISTRY


@SAMPLER_REGISTRY.register()
class RandomSampler(TrainBatchSampler):
    """Global batches cut from back-to-back random permutations of the records; rank r takes slice r of each.

    ``num_instances`` is accepted, and ignored, so that every training sampler shares one constructor.
    """

    def __init__(self, records: Sequence[ImageRecord], batch_size: int, num_instances: int = 1, world_size: int = 1,
                 rank: int = 0, seed: int = 0, iters_per_epoch: int = 1) -> None:
        super().__init__(records, batch_size, world_size, rank, seed, iters_per_epoch)

    def global_batches(self, epoch: int) -> np.ndarray:
        rng = epoch_rng(self.seed, epoch, STREAM_ORDER)
        n, total = len(self.records), self.iters_per_epoch * self.batch_size
        order = np.concatenate([rng.permutation(n) for _ in range(-(-total // n))])
        return order[:total].reshape(self.iters_per_epoch, self.batch_size)
