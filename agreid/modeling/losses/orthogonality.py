"""Orthogonality regulariser between identity and view features (VDT, SeCap): λ·mean|cos(f, v)|.

It pushes the view-decoupled identity feature f = g − v to carry no view direction. Both inputs are the
pre-BN head features; λ is MODEL.SECAP.VIEW_LAMBDA (the reference shares it with the view CE term).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agreid.registries import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class OrthogonalityLoss(nn.Module):
    """``scale * mean_i |cos(features_i, view_features_i)|``; reported as ``loss_oreg``.

    Unlike the identity losses its second argument is a feature tensor, not targets.
    """

    name = "oreg"
    input_key = "features_before"

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    @classmethod
    def from_config(cls, cfg) -> "OrthogonalityLoss":
        """Build with ``scale`` = MODEL.SECAP.VIEW_LAMBDA."""
        return cls(scale=cfg.MODEL.SECAP.VIEW_LAMBDA)

    def forward(self, features: torch.Tensor, view_features: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(features, view_features, dim=1).abs().mean() * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
