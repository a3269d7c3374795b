"""P×K identity batch sampler: every batch holds P distinct identities with K images each."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from agreid.config.config import ConfigError
from agreid.data.records import ImageRecord
from agreid.data.samplers.base import STREAM_ORDER, TrainBatchSampler, epoch_rng
from agreid.registries import SAMPLER_REGISTRY


def take(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` items of an already shuffled ``pool``, topped up by sampling with replacement only if it is too small."""
    if len(pool) >= count:
        return pool[:count]
    return np.concatenate([pool, rng.choice(pool, count - len(pool), replace=True)])


@SAMPLER_REGISTRY.register()
class IdentitySampler(TrainBatchSampler):
    """Random-identity P×K sampling (the "naive identity" sampler of torchreid / fast-reid).

    Each round shuffles every identity's images (padding to K with replacement when it has fewer), cuts
    them into groups of K, and fills global batches with P × world distinct identities until too few
    identities have groups left; rounds repeat until ``iters_per_epoch`` batches exist. Rank r gets the
    r-th run of P whole identities.
    """

    def __init__(self, records: Sequence[ImageRecord], batch_size: int, num_instances: int, world_size: int = 1,
                 rank: int = 0, seed: int = 0, iters_per_epoch: int = 1) -> None:
        super().__init__(records, batch_size, world_size, rank, seed, iters_per_epoch)
        k = int(num_instances)
        if k < 1:
            raise ConfigError(f"NUM_INSTANCE (K) must be >= 1, got {k}")
        p = self.per_rank // k
        if p < 1:
            raise ConfigError(
                f"P×K sampling needs P >= 1 identity per process, but P = per-process batch {self.per_rank} "
                f"(IMS_PER_BATCH {self.batch_size} / {self.world_size} processes) // K {k} = 0. "
                f"Raise IMS_PER_BATCH to at least K × processes = {k * self.world_size} or lower NUM_INSTANCE")
        if self.per_rank % k != 0:
            raise ConfigError(
                f"The per-process batch {self.per_rank} (IMS_PER_BATCH {self.batch_size} / {self.world_size} "
                f"processes) is not a multiple of K = {k}, so it cannot hold P whole identities of K images")
        by_pid: Dict[int, List[int]] = {}
        for i, r in enumerate(self.records):
            by_pid.setdefault(r.pid, []).append(i)
        self.num_instances = k
        self.num_pids_per_rank = p
        self.num_pids_global = p * self.world_size
        self.pids = sorted(by_pid)
        self.pid_index = {pid: np.asarray(by_pid[pid], dtype=np.int64) for pid in self.pids}
        if len(self.pids) < self.num_pids_global:
            raise ConfigError(
                f"A global batch needs P × processes = {p} × {self.world_size} = {self.num_pids_global} distinct "
                f"identities but the training set has only {len(self.pids)}; lower IMS_PER_BATCH or raise K")

    def identity_chunks(self, pid: int, rng: np.random.Generator) -> List[np.ndarray]:
        """This round's groups of K record indices for ``pid``."""
        k = self.num_instances
        perm = take(rng.permutation(self.pid_index[pid]), k, rng)
        return [perm[i * k:(i + 1) * k] for i in range(len(perm) // k)]

    def _round(self, rng: np.random.Generator, needed: int) -> List[np.ndarray]:
        chunks = {pid: self.identity_chunks(pid, rng) for pid in self.pids}
        available = list(self.pids)
        batches: List[np.ndarray] = []
        while len(available) >= self.num_pids_global and len(batches) < needed:
            picked = [available[j] for j in rng.choice(len(available), self.num_pids_global, replace=False)]
            batches.append(np.concatenate([chunks[pid].pop() for pid in picked]))
            available = [pid for pid in available if chunks[pid]]
        return batches

    def global_batches(self, epoch: int) -> np.ndarray:
        rng = epoch_rng(self.seed, epoch, STREAM_ORDER)
        batches: List[np.ndarray] = []
        while len(batches) < self.iters_per_epoch:
            batches.extend(self._round(rng, self.iters_per_epoch - len(batches)))
        return np.stack(batches)
