"""The BNNeck head of the re-ID "bag of tricks": pooling, a bias-frozen BatchNorm, a bias-free classifier."""
from __future__ import annotations

from typing import Dict, Union

import torch
from torch import nn

from agreid.registries import HEAD_REGISTRY

from .pooling import build_pooling

NECK_FEATS = ("before", "after")


class BNNeckHead(nn.Module):
    """Pool → feature (before) → BatchNorm1d with frozen bias (after) → Linear classifier.

    The triplet loss uses the features before the neck and the ID loss the logits of the normalised
    ones. With ``num_classes == 0`` there is no classifier (an evaluation-only model).
    """

    def __init__(self, in_dim: int, num_classes: int = 0, pool: str = "avg", gem_p: float = 3.0,
                 neck_feat: str = "after", cls_bias: bool = False) -> None:
        super().__init__()
        if neck_feat not in NECK_FEATS:
            raise ValueError(f"MODEL.HEADS.NECK_FEAT must be one of {NECK_FEATS}, got '{neck_feat}'")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.in_dim = in_dim
        self.num_classes = num_classes
        self.neck_feat = neck_feat
        self.pool = build_pooling(pool, gem_p)
        self.bottleneck = nn.BatchNorm1d(in_dim)
        nn.init.ones_(self.bottleneck.weight)
        nn.init.zeros_(self.bottleneck.bias)
        self.bottleneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(in_dim, num_classes, bias=cls_bias) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)
            if self.classifier.bias is not None:
                nn.init.zeros_(self.classifier.bias)

    @classmethod
    def from_config(cls, cfg, in_dim: int) -> "BNNeckHead":
        """Build from MODEL.HEADS.* for a backbone of width ``in_dim``."""
        h = cfg.MODEL.HEADS
        return cls(in_dim, num_classes=h.NUM_CLASSES, pool=h.POOL, gem_p=h.GEM_P,
                   neck_feat=h.NECK_FEAT, cls_bias=h.CLS_BIAS)

    def forward(self, features: torch.Tensor) -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        """Training: dict of ``cls_logits`` (None without classifier), ``features_before``, ``features_after``.

        Evaluation: the test feature (B×D) before or after the neck, per ``neck_feat``.
        """
        before = self.pool(features)
        after = self.bottleneck(before)
        if not self.training:
            return after if self.neck_feat == "after" else before
        logits = self.classifier(after) if self.classifier is not None else None
        return {"cls_logits": logits, "features_before": before, "features_after": after}


@HEAD_REGISTRY.register("BNNeckHead")
def build_bnneck_head(cfg, in_dim: int) -> nn.Module:
    """Registry builder: :class:`BNNeckHead` from MODEL.HEADS.*."""
    return BNNeckHead.from_config(cfg, in_dim)
