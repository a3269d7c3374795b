"""Whole re-ID models registered in META_ARCH_REGISTRY."""
from .baseline import Baseline, build_baseline, build_losses

__all__ = ["Baseline", "build_baseline", "build_losses"]
