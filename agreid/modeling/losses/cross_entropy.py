"""Identity classification loss with label smoothing (the BoT ID loss)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agreid.registries import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class CrossEntropyLoss(nn.Module):
    """Cross entropy against ``(1 - epsilon) * one_hot + epsilon / num_classes`` targets, times ``scale``.

    Reads the head output ``cls_logits``; reported as ``loss_cls``.
    """

    name = "cls"
    input_key = "cls_logits"

    def __init__(self, epsilon: float = 0.1, scale: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"Label smoothing epsilon must be in [0, 1), got {epsilon}")
        self.epsilon = epsilon
        self.scale = scale

    @classmethod
    def from_config(cls, cfg) -> "CrossEntropyLoss":
        """Build from MODEL.LOSSES.CE.*."""
        return cls(epsilon=cfg.MODEL.LOSSES.CE.EPSILON, scale=cfg.MODEL.LOSSES.CE.SCALE)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean smoothed cross entropy of B×C ``logits`` against B class indices."""
        return F.cross_entropy(logits, targets, label_smoothing=self.epsilon) * self.scale

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, scale={self.scale}"
