"""Batch samplers; importing this package registers the training ones in SAMPLER_REGISTRY."""
from agreid.data.samplers.base import TrainBatchSampler, epoch_rng, resolve_iters_per_epoch, resolve_seed
from agreid.data.samplers.identity import IdentitySampler
from agreid.data.samplers.inference import InferenceSampler
from agreid.data.samplers.modality_balanced import ModalityBalancedIdentitySampler  # noqa: F401
from agreid.data.samplers.random_sampler import RandomSampler
from agreid.data.samplers.view_balanced import ViewBalancedIdentitySampler

__all__ = ["TrainBatchSampler", "IdentitySampler", "ViewBalancedIdentitySampler", "RandomSampler",
           "InferenceSampler", "epoch_rng", "resolve_iters_per_epoch", "resolve_seed"]
