"""Supervised contrastive loss between two sets of features (CLIP-ReID's stage-1 image↔text loss)."""
from __future__ import annotations

import torch
from torch import nn

from agreid.registries import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class SupConLoss(nn.Module):
    """Mean over anchors of −mean over positives of log softmax(⟨anchor, candidate⟩ / temperature).

    Anchors are the rows of ``anchors`` (labels ``anchor_labels``), candidates the rows of ``candidates``;
    positives are the candidates with the anchor's label. CLIP-ReID (``loss/supcontrast.py``) uses it on
    **unnormalised** features with temperature 1, once image→text and once text→image. Reported as
    ``loss_supcon``; an anchor without a positive gives NaN, as in the reference (its batches always pair each
    image with its own identity's text).
    """

    name = "supcon"

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"SupCon temperature must be > 0, got {temperature}")
        self.temperature = temperature

    @classmethod
    def from_config(cls, cfg) -> "SupConLoss":
        """Build from MODEL.LOSSES.SUPCON.*."""
        return cls(temperature=cfg.MODEL.LOSSES.SUPCON.TEMPERATURE)

    def forward(self, anchors: torch.Tensor, candidates: torch.Tensor, anchor_labels: torch.Tensor,
                candidate_labels: torch.Tensor) -> torch.Tensor:
        """Loss of M×D ``anchors`` against N×D ``candidates`` with M and N identity labels."""
        positive = (anchor_labels.view(-1, 1) == candidate_labels.view(1, -1)).to(anchors.dtype)
        logits = anchors @ candidates.t() / self.temperature
        log_prob = torch.log_softmax(logits, dim=1)
        return -((positive * log_prob).sum(dim=1) / positive.sum(dim=1)).mean()

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
