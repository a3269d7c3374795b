"""Center loss (Wen et al., ECCV 2016) as ReID-Survey's AGW uses it, with centres stepped by their own SGD."""
from __future__ import annotations

import torch
from torch import nn

from agreid.config.config import ConfigError
from agreid.registries import LOSS_REGISTRY

CLAMP_MIN, CLAMP_MAX = 1e-12, 1e12


@LOSS_REGISTRY.register()
class CenterLoss(nn.Module):
    """``weight · Σ_i clamp(|x_i - c_{y_i}|², 1e-12, 1e12) / B`` with one learnable centre per class.

    Reads ``features_before``; reported as ``loss_center``. Reference: mangye16/ReID-Survey
    ``modeling/layer/center_loss.py``, centres drawn from N(0, 1). The reference clamps every entry of its
    masked B×C distance matrix, so each of the B·(C-1) masked-out zeros adds 1e-12; that constant is added
    here too (it has no gradient). The squared distance is ``|x|² + |c|² - 2x·c`` as there.

    The centres are not trained by the main optimizer: the module carries ``own_optimizer`` =
    ``{"lr": center_lr, "grad_scale": 1 / weight}``, which the trainer turns into a plain SGD stepped after
    multiplying the centres' gradients by 1 / weight, as ReID-Survey's ``create_supervised_trainer`` does (its
    ``optimizer_center`` at SOLVER.CENTER_LR, constant, outside the schedule). With ``num_classes`` 0 (a model
    built for evaluation only) there are no centres and calling the loss is an error.
    """

    name = "center"
    input_key = "features_before"

    def __init__(self, num_classes: int, feat_dim: int, weight: float = 5e-4, center_lr: float = 0.5) -> None:
        super().__init__()
        if num_classes < 0:
            raise ConfigError(f"CenterLoss: the class count must be >= 0, got {num_classes}")
        if feat_dim < 1:
            raise ConfigError(f"MODEL.LOSSES.CENTER.FEAT_DIM must be the feature width, got {feat_dim}")
        if weight <= 0:
            raise ConfigError(f"MODEL.LOSSES.CENTER.WEIGHT must be > 0 (its gradients are scaled by 1 / weight), "
                              f"got {weight}")
        self.num_classes = num_classes
        self.weight = weight
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))
        self.own_optimizer = {"lr": float(center_lr), "grad_scale": 1.0 / weight}

    @classmethod
    def from_config(cls, cfg) -> "CenterLoss":
        """Build from MODEL.HEADS.NUM_CLASSES, MODEL.LOSSES.CENTER.{FEAT_DIM, WEIGHT} and SOLVER.CENTER_LR."""
        c = cfg.MODEL.LOSSES.CENTER
        return cls(cfg.MODEL.HEADS.NUM_CLASSES, c.FEAT_DIM, weight=c.WEIGHT, center_lr=cfg.SOLVER.CENTER_LR)

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Weighted loss of B×D ``features`` with B class indices."""
        if self.num_classes == 0:
            raise RuntimeError("CenterLoss was built without classes (an evaluation-only model): set "
                               "MODEL.HEADS.NUM_CLASSES to the number of training identities")
        if features.shape[1] != self.centers.shape[1]:
            raise ValueError(f"CenterLoss has {self.centers.shape[1]}-d centres but got {features.shape[1]}-d "
                             f"features; set MODEL.LOSSES.CENTER.FEAT_DIM to the feature width")
        centers = self.centers.index_select(0, targets)
        dist = features.pow(2).sum(dim=1) + centers.pow(2).sum(dim=1) - 2.0 * (features * centers).sum(dim=1)
        b = features.shape[0]
        masked_out = b * (self.num_classes - 1) * CLAMP_MIN
        loss = (dist.clamp(min=CLAMP_MIN, max=CLAMP_MAX).sum() + masked_out) / b
        return loss * self.weight

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, weight={self.weight}, own_optimizer={self.own_optimizer}"
