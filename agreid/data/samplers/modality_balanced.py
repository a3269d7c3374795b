"""Visible-infrared identity sampler: each identity in a batch brings K visible then K infrared images (AGW)."""
from __future__ import annotations

from typing import Any, List, Sequence

import numpy as np

from agreid.config.config import ConfigError
from agreid.data.records import INFRARED, VISIBLE, ImageRecord
from agreid.data.samplers.base import STREAM_ORDER, TrainBatchSampler, epoch_rng, resolve_seed
from agreid.registries import SAMPLER_REGISTRY

MAX_NAMED = 10


def check_modality_batch(batch_size: int, num_instances: int, world_size: int) -> None:
    """Raise a ConfigError unless each process's batch holds whole groups of K visible + K infrared images."""
    k = int(num_instances)
    if k < 1:
        raise ConfigError(f"NUM_INSTANCE (K, images per modality and identity) must be >= 1, got {k}")
    if world_size < 1 or batch_size < 1 or batch_size % world_size != 0:
        return
    per_rank, group = batch_size // world_size, 2 * k
    if per_rank % group != 0:
        raise ConfigError(
            f"ModalityBalancedIdentitySampler puts K = {k} visible + K = {k} infrared images of each identity in a "
            f"batch, so the per-process batch {per_rank} (IMS_PER_BATCH {batch_size} / {world_size} processes) must "
            f"be a multiple of 2K = {group}; set IMS_PER_BATCH to a multiple of {group * world_size}")


def reference_epoch_length(records: Sequence[ImageRecord], batch_size: int) -> int:
    """Steps per epoch of the reference: ``int(N / (P·K)) + 1`` with N = max(#visible, #infrared) and P·K the
    images per modality of a (global) batch, ``batch_size / 2``."""
    n_vis = sum(1 for r in records if r.modality == VISIBLE)
    n_ir = sum(1 for r in records if r.modality == INFRARED)
    return max(n_vis, n_ir) // max(1, batch_size // 2) + 1


@SAMPLER_REGISTRY.register()
class ModalityBalancedIdentitySampler(TrainBatchSampler):
    """P identities × (K visible + K infrared) images per process batch: the AGW reference's ``IdentitySampler``.

    Reference (mangye16/Cross-Modal-Re-ID-baseline ``utils.py``, used unchanged by ZYK100/LLCM): every batch
    draws its identities uniformly without replacement, then K visible and K infrared images of each with
    replacement (``np.random.choice``). Here a global batch of P × processes identities is drawn that way from
    a generator owned by (seed, epoch), every rank builds the same batches and rank r keeps the r-th run of P
    whole identities, so DDP changes nothing but who computes what. A group is K visible then K infrared
    indices (the reference instead stacks a batch's visible images before its thermal ones; every loss is
    invariant to that order). ``num_instances`` (``DATALOADER.NUM_INSTANCE``) is K per modality.

    Every identity must have images in both modalities: otherwise a ConfigError names them (the reference
    would index an empty list). With SOLVER.ITERS_PER_EPOCH 0 an epoch has the reference's
    :func:`reference_epoch_length` steps.
    """

    def __init__(self, records: Sequence[ImageRecord], batch_size: int, num_instances: int, world_size: int = 1,
                 rank: int = 0, seed: int = 0, iters_per_epoch: int = 1) -> None:
        check_modality_batch(batch_size, num_instances, world_size)
        super().__init__(records, batch_size, world_size, rank, seed, iters_per_epoch)
        k = int(num_instances)
        self.per_modality = k
        self.num_pids_per_rank = self.per_rank // (2 * k)
        self.num_pids_global = self.num_pids_per_rank * self.world_size
        modality = np.array([r.modality for r in self.records])
        pids = np.array([r.pid for r in self.records])
        self.pids = sorted(set(pids.tolist()))
        self.visible_index = {pid: np.flatnonzero((pids == pid) & (modality == VISIBLE)) for pid in self.pids}
        self.infrared_index = {pid: np.flatnonzero((pids == pid) & (modality == INFRARED)) for pid in self.pids}
        unpaired = [pid for pid in self.pids if not len(self.visible_index[pid]) or not len(self.infrared_index[pid])]
        if unpaired:
            named = ", ".join(str(p) for p in unpaired[:MAX_NAMED]) + (" ..." if len(unpaired) > MAX_NAMED else "")
            raise ConfigError(
                f"ModalityBalancedIdentitySampler needs visible and infrared images of every training identity, but "
                f"{len(unpaired)} of {len(self.pids)} lack one modality (class indices {named}). Use a "
                f"visible-infrared training set, or another DATALOADER.SAMPLER_TRAIN")
        if len(self.pids) < self.num_pids_global:
            raise ConfigError(
                f"A global batch needs P × processes = {self.num_pids_per_rank} × {self.world_size} = "
                f"{self.num_pids_global} identities with both visible and infrared images, but the training set "
                f"has only {len(self.pids)}; lower IMS_PER_BATCH or raise NUM_INSTANCE")

    @classmethod
    def from_config(cls, cfg: Any, records: Sequence[ImageRecord], world_size: int,
                    rank: int) -> "ModalityBalancedIdentitySampler":
        """Build from ``SOLVER.IMS_PER_BATCH``, ``DATALOADER.NUM_INSTANCE``, ``SEED`` and ``SOLVER.ITERS_PER_EPOCH``
        (0: the reference's epoch length, :func:`reference_epoch_length`)."""
        batch = int(cfg.SOLVER.IMS_PER_BATCH)
        iters = int(cfg.SOLVER.ITERS_PER_EPOCH) or reference_epoch_length(records, batch)
        return cls(records, batch_size=batch, num_instances=int(cfg.DATALOADER.NUM_INSTANCE), world_size=world_size,
                   rank=rank, seed=resolve_seed(int(cfg.SEED)), iters_per_epoch=iters)

    def global_batches(self, epoch: int) -> np.ndarray:
        rng = epoch_rng(self.seed, epoch, STREAM_ORDER)
        k = self.per_modality
        batches: List[np.ndarray] = []
        for _ in range(self.iters_per_epoch):
            picked = rng.choice(len(self.pids), self.num_pids_global, replace=False)
            groups = []
            for j in picked:
                pid = self.pids[j]
                groups.append(rng.choice(self.visible_index[pid], k, replace=True))
                groups.append(rng.choice(self.infrared_index[pid], k, replace=True))
            batches.append(np.concatenate(groups))
        return np.stack(batches)
