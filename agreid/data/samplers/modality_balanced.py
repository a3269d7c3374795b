"""Visible-infrared identity sampler: each identity in a batch brings K visible then K infrared images (AGW)."""
from __future__ import annotations

import logging
from typing import List, Sequence

import numpy as np

from agreid.data.records import INFRARED, VISIBLE, ImageRecord
from agreid.data.samplers.identity import IdentitySampler, take
from agreid.registries import SAMPLER_REGISTRY
from agreid.config.config import ConfigError

logger = logging.getLogger(__name__)


def check_modality_batch(batch_size: int, num_instances: int, world_size: int) -> None:
    """Raise a ValueError unless each process's batch holds whole groups of K visible + K infrared images."""
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


@SAMPLER_REGISTRY.register()
class ModalityBalancedIdentitySampler(IdentitySampler):
    """P identities × (K visible + K infrared) images per process batch, as the AGW visible-infrared sampler.

    ``num_instances`` (``DATALOADER.NUM_INSTANCE``) is K per modality, so a group is 2K indices: K visible
    then K infrared. Only identities with images in both modalities are sampled. In each round an identity
    yields max(1, max(n_visible, n_infrared) // K) groups from shuffled images of each modality, the smaller
    modality topped up with replacement (AGW always draws with replacement). Rounds, batches and rank slices
    (whole identities) follow :class:`IdentitySampler`, so the order is a pure function of (seed, epoch).
    """

    def __init__(self, records: Sequence[ImageRecord], batch_size: int, num_instances: int, world_size: int = 1,
                 rank: int = 0, seed: int = 0, iters_per_epoch: int = 1) -> None:
        check_modality_batch(batch_size, num_instances, world_size)
        super().__init__(records, batch_size, 2 * int(num_instances), world_size, rank, seed, iters_per_epoch)
        self.per_modality = int(num_instances)
        modality = np.array([r.modality for r in self.records])
        self.visible_index = {pid: idx[modality[idx] == VISIBLE] for pid, idx in self.pid_index.items()}
        self.infrared_index = {pid: idx[modality[idx] == INFRARED] for pid, idx in self.pid_index.items()}
        paired = [pid for pid in self.pids if len(self.visible_index[pid]) and len(self.infrared_index[pid])]
        if len(paired) < len(self.pids):
            logger.warning("ModalityBalancedIdentitySampler: %d of %d training identities lack visible or infrared "
                           "images and are never sampled", len(self.pids) - len(paired), len(self.pids))
        if len(paired) < self.num_pids_global:
            raise ConfigError(
                f"A global batch needs P × processes = {self.num_pids_per_rank} × {self.world_size} = "
                f"{self.num_pids_global} identities with both visible and infrared images, but the training set "
                f"has only {len(paired)}; lower IMS_PER_BATCH, raise NUM_INSTANCE or use a visible-infrared dataset")
        self.pids = paired

    def identity_chunks(self, pid: int, rng: np.random.Generator) -> List[np.ndarray]:
        k = self.per_modality
        vis, ir = self.visible_index[pid], self.infrared_index[pid]
        groups = max(1, max(len(vis), len(ir)) // k)
        vis_pick = take(rng.permutation(vis), groups * k, rng)
        ir_pick = take(rng.permutation(ir), groups * k, rng)
        return [np.concatenate([vis_pick[g * k:(g + 1) * k], ir_pick[g * k:(g + 1) * k]]) for g in range(groups)]
