"""Triplet loss on a P×K batch: batch-hard (or softmax-weighted) mining, hard or soft margin."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from agreid.registries import LOSS_REGISTRY


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances between rows of ``x`` (M×D) and ``y`` (N×D)."""
    xx = x.pow(2).sum(dim=1, keepdim=True)
    yy = y.pow(2).sum(dim=1, keepdim=True).t()
    return (xx + yy - 2.0 * x @ y.t()).clamp(min=1e-12).sqrt()


def hard_example_mining(dist: torch.Tensor, is_pos: torch.Tensor,
                        is_neg: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per anchor, the largest positive and the smallest negative distance."""
    dist_ap = dist.masked_fill(~is_pos, float("-inf")).amax(dim=1)
    dist_an = dist.masked_fill(~is_neg, float("inf")).amin(dim=1)
    return dist_ap, dist_an


def weighted_example_mining(dist: torch.Tensor, is_pos: torch.Tensor,
                            is_neg: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per anchor, softmax-weighted means of positive (far ones weigh more) and negative (near ones) distances."""
    w_ap = torch.softmax(dist.masked_fill(~is_pos, float("-inf")), dim=1)
    w_an = torch.softmax((-dist).masked_fill(~is_neg, float("-inf")), dim=1)
    return (w_ap * dist).sum(dim=1), (w_an * dist).sum(dim=1)


@LOSS_REGISTRY.register()
class TripletLoss(nn.Module):
    """``relu(d(a,p) - d(a,n) + margin)`` averaged over anchors; ``softplus(d(a,p) - d(a,n))`` when margin <= 0.

    Reads the head output ``features_before``; reported as ``loss_triplet``. Anchors without
    another image of their identity or without a negative in the batch are left out.
    """

    name = "triplet"
    input_key = "features_before"

    def __init__(self, margin: float = 0.3, hard_mining: bool = True, norm_feat: bool = False,
                 scale: float = 1.0) -> None:
        super().__init__()
        self.margin = margin
        self.hard_mining = hard_mining
        self.norm_feat = norm_feat
        self.scale = scale

    @classmethod
    def from_config(cls, cfg) -> "TripletLoss":
        """Build from MODEL.LOSSES.TRI.*."""
        t = cfg.MODEL.LOSSES.TRI
        return cls(margin=t.MARGIN, hard_mining=t.HARD_MINING, norm_feat=t.NORM_FEAT, scale=t.SCALE)

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of B×D ``features`` with B identity labels."""
        if self.norm_feat:
            features = F.normalize(features, dim=1)
        dist = euclidean_dist(features, features)
        same = targets.view(-1, 1) == targets.view(1, -1)
        eye = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
        is_pos, is_neg = same & ~eye, ~same
        valid = is_pos.any(dim=1) & is_neg.any(dim=1)
        # Anchors without a positive or a negative get themselves as both, so every row stays finite, and are
        # then left out of the mean: no boolean indexing, hence no host sync in the training step.
        spare = eye & ~valid[:, None]
        mine = hard_example_mining if self.hard_mining else weighted_example_mining
        dist_ap, dist_an = mine(dist, is_pos | spare, is_neg | spare)
        if self.margin > 0:
            loss = F.relu(dist_ap - dist_an + self.margin)
        else:
            loss = F.softplus(dist_ap - dist_an)
        weight = valid.to(loss.dtype)
        return (loss * weight).sum() / weight.sum().clamp(min=1.0) * self.scale

    def extra_repr(self) -> str:
        return (f"margin={self.margin}, hard_mining={self.hard_mining}, norm_feat={self.norm_feat}, "
                f"scale={self.scale}")
