"""What every training batch sampler shares: argument checks, per-epoch random streams and rank slicing.

A sampler builds the same global batches on every rank from (seed, epoch) alone; rank r keeps the r-th
contiguous slice of each. Every item carries an augmentation seed that depends only on (seed, epoch, position).
"""
from __future__ import annotations

import logging
from typing import Any, Iterator, List, Sequence, Tuple

import numpy as np
from torch.utils.data import Sampler

from agreid.config.config import ConfigError
from agreid.data.records import ImageRecord
from agreid.utils import comm

logger = logging.getLogger(__name__)

STREAM_ORDER = 0
STREAM_AUG = 1
_MAX_SEED = 2 ** 63 - 1


def epoch_rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """A generator owned by one (seed, epoch, stream) triple, independent of any global random state."""
    return np.random.default_rng([seed, epoch, stream])


def resolve_iters_per_epoch(iters_per_epoch: int, num_records: int, batch_size: int) -> int:
    """``iters_per_epoch`` when positive, else ``num_records // batch_size``, and at least 1."""
    if iters_per_epoch > 0:
        return int(iters_per_epoch)
    return max(1, num_records // max(1, batch_size))


def resolve_seed(seed: int) -> int:
    """A non-negative ``seed`` as is; a negative one means a fresh seed drawn on rank 0, shared and logged."""
    if seed >= 0:
        return int(seed)
    drawn = comm.shared_random_seed()
    logger.info("Sampler seed: using the generated seed %d (set SEED >= 0 to make runs repeatable)", drawn)
    return drawn


class TrainBatchSampler(Sampler):
    """Base of the training batch samplers; subclasses implement :meth:`global_batches`.

    Iterating yields this rank's batches of ``(index, aug_seed)`` pairs for the epoch set by :meth:`set_epoch`.
    """

    def __init__(self, records: Sequence[ImageRecord], batch_size: int, world_size: int, rank: int,
                 seed: int, iters_per_epoch: int) -> None:
        super().__init__()
        if len(records) == 0:
            raise ConfigError("The training set is empty: no records to sample from")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"Invalid rank {rank} for world size {world_size}")
        if batch_size < 1 or batch_size % world_size != 0:
            raise ConfigError(f"The global batch size (SOLVER.IMS_PER_BATCH = {batch_size}) must be a positive "
                             f"multiple of the number of processes ({world_size})")
        if iters_per_epoch < 1:
            raise ConfigError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
        if seed < 0:
            raise ConfigError(f"The sampler seed must be >= 0, got {seed}; resolve it with resolve_seed()")
        self.records = list(records)
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.per_rank = self.batch_size // self.world_size
        self.seed = int(seed)
        self.iters_per_epoch = int(iters_per_epoch)
        self.epoch = 0
        self.start_iter = 0

    @classmethod
    def from_config(cls, cfg: Any, records: Sequence[ImageRecord], world_size: int, rank: int) -> "TrainBatchSampler":
        """Build from ``SOLVER.IMS_PER_BATCH``, ``DATALOADER.NUM_INSTANCE``, ``SEED`` and ``SOLVER.ITERS_PER_EPOCH``."""
        batch = int(cfg.SOLVER.IMS_PER_BATCH)
        return cls(records, batch_size=batch, num_instances=int(cfg.DATALOADER.NUM_INSTANCE),
                   world_size=world_size, rank=rank, seed=resolve_seed(int(cfg.SEED)),
                   iters_per_epoch=resolve_iters_per_epoch(int(cfg.SOLVER.ITERS_PER_EPOCH), len(records), batch))

    def set_epoch(self, epoch: int, start_iter: int = 0) -> None:
        """Select the epoch to iterate; ``start_iter`` skips that many batches (resuming inside an epoch)."""
        if epoch < 0 or not 0 <= start_iter <= self.iters_per_epoch:
            raise ConfigError(f"Invalid epoch {epoch} / start_iter {start_iter} "
                             f"(iters_per_epoch = {self.iters_per_epoch})")
        self.epoch = int(epoch)
        self.start_iter = int(start_iter)

    def global_batches(self, epoch: int) -> np.ndarray:
        """An (iters_per_epoch, batch_size) array of record indices, identical on every rank."""
        raise NotImplementedError

    def rank_batches(self, epoch: int) -> Tuple[np.ndarray, np.ndarray]:
        """This rank's (indices, aug_seeds) arrays of shape (iters_per_epoch, per-rank batch)."""
        batches = self.global_batches(epoch)
        seeds = epoch_rng(self.seed, epoch, STREAM_AUG).integers(0, _MAX_SEED, size=batches.shape, dtype=np.int64)
        lo, hi = self.rank * self.per_rank, (self.rank + 1) * self.per_rank
        return batches[:, lo:hi], seeds[:, lo:hi]

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        indices, seeds = self.rank_batches(self.epoch)
        for b in range(self.start_iter, self.iters_per_epoch):
            yield [(int(i), int(s)) for i, s in zip(indices[b], seeds[b])]

    def __len__(self) -> int:
        return self.iters_per_epoch - self.start_iter
