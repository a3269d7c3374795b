"""The registries through which every pluggable component is found by name."""
from agreid.utils.registry import Registry

DATASET_REGISTRY = Registry("DATASET")
"""Dataset adapters: ``cls(root, **options)`` returning a :class:`agreid.data.ReIDDataset`."""

BACKBONE_REGISTRY = Registry("BACKBONE")
"""Backbone builders: ``fn(cfg) -> nn.Module`` exposing ``out_dim`` (feature width)."""

HEAD_REGISTRY = Registry("HEAD")
"""Head builders: ``fn(cfg, in_dim) -> nn.Module``."""

META_ARCH_REGISTRY = Registry("META_ARCH")
"""Whole-model builders: ``fn(cfg) -> nn.Module`` (losses dict in train mode, features in eval mode)."""

LOSS_REGISTRY = Registry("LOSS")
"""Loss modules: ``cls.from_config(cfg) -> nn.Module``."""

SAMPLER_REGISTRY = Registry("SAMPLER")
"""Training batch samplers: ``cls.from_config(cfg, records, world_size, rank)``."""

EVALUATOR_REGISTRY = Registry("EVALUATOR")
"""Evaluators: ``DatasetEvaluator`` subclasses built per test protocol."""

GALLERY_RULE_REGISTRY = Registry("GALLERY_RULE")
"""Per-query gallery-removal rules used by :func:`agreid.evaluation.evaluate_ranking`."""

CHECKPOINT_FORMAT_REGISTRY = Registry("CHECKPOINT_FORMAT")
"""Reference-checkpoint converters: ``fn(state_dict, model) -> ConvertedState | None`` (None: not this format).

See :mod:`agreid.modeling.conversion`; ``MODEL.WEIGHTS`` tries each one on a state dict whose keys do not
already fit the model.
"""
