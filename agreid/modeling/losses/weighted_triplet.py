"""AGW's Weighted Regularized Triplet (WRT): softmax-weighted positive and negative distances, soft margin.

Reference: ``TripletLoss_WRT`` (mangye16/Cross-Modal-Re-ID-baseline ``loss.py``) and
``WeightedRegularizedTriplet`` (mangye16/ReID-Survey ``modeling/layer/triplet_loss.py``), the same formula.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from agreid.registries import LOSS_REGISTRY

from .triplet import euclidean_dist, weighted_example_mining

REFERENCE_EPS = 1e-6


def reference_softmax_weights(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The references' ``softmax_weights(values * mask, mask)``: ``exp(v - m)·mask / (Σ exp(v - m)·mask + 1e-6)``.

    ``m`` is the row maximum of ``values * mask`` taken over **every** entry, the masked-out ones counting as 0.
    For the negatives (``values = -d``, all below 0) that makes m = 0 rather than the largest -d, so far
    negatives underflow and the 1e-6 dominates the sum: the weights then add up to far less than 1 and the
    weighted negative distance shrinks towards 0 (the large WRT values of untrained models come from this).
    """
    masked = values * mask
    m = masked.amax(dim=1, keepdim=True)
    e = torch.exp(masked - m) * mask
    return e / (e.sum(dim=1, keepdim=True) + REFERENCE_EPS)


def reference_weighted_mining(dist: torch.Tensor, same: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per anchor, the references' weighted positive and negative distances; positives include the anchor."""
    is_pos = same.to(dist.dtype)
    is_neg = 1.0 - is_pos
    dist_ap, dist_an = dist * is_pos, dist * is_neg
    w_ap = reference_softmax_weights(dist_ap, is_pos)
    w_an = reference_softmax_weights(-dist_an, is_neg)
    return (dist_ap * w_ap).sum(dim=1), (dist_an * w_an).sum(dim=1)


@LOSS_REGISTRY.register()
class WeightedRegularizedTriplet(nn.Module):
    """``mean softplus(d_p - d_n)`` with d_p / d_n the softmax(d)- / softmax(-d)-weighted positive / negative
    Euclidean distances of each anchor (no margin).

    Reads ``features_before``; reported as ``loss_wrt``. By default (``exact_softmax`` False) the weights are
    the references' (:func:`reference_softmax_weights`: the anchor counts as its own positive, a 1e-6 in the
    normaliser, and a shift that lets the negative weights underflow). ``exact_softmax`` True
    (MODEL.LOSSES.WRT.EXACT_SOFTMAX) uses a proper max-shifted softmax over the other images
    (:func:`weighted_example_mining`), the loss the AGW paper describes; it changes the values, so reference
    training is reproduced only with False. The distances are ``sqrt(clamp(|a|² + |b|² - 2a·b, 1e-12))``
    as in the references. Their ``SoftMarginLoss`` computes ``log(1 + exp(d_p - d_n))`` directly, which is
    inf in float32 once ``d_p - d_n`` exceeds ~88; ``softplus`` gives the same values and stays finite there.
    """

    name = "wrt"
    input_key = "features_before"

    def __init__(self, exact_softmax: bool = False, norm_feat: bool = False, scale: float = 1.0) -> None:
        super().__init__()
        self.exact_softmax = exact_softmax
        self.norm_feat = norm_feat
        self.scale = scale

    @classmethod
    def from_config(cls, cfg) -> "WeightedRegularizedTriplet":
        """Build from MODEL.LOSSES.WRT.*."""
        w = cfg.MODEL.LOSSES.WRT
        return cls(exact_softmax=w.EXACT_SOFTMAX, norm_feat=w.NORM_FEAT, scale=w.SCALE)

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of B×D ``features`` with B identity labels."""
        if self.norm_feat:
            features = F.normalize(features, dim=1)
        dist = euclidean_dist(features, features)
        same = targets.view(-1, 1) == targets.view(1, -1)
        if self.exact_softmax:
            eye = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
            is_pos, is_neg = same & ~eye, ~same
            valid = is_pos.any(dim=1) & is_neg.any(dim=1)
            spare = eye & ~valid[:, None]
            dist_ap, dist_an = weighted_example_mining(dist, is_pos | spare, is_neg | spare)
            loss = F.softplus(dist_ap - dist_an)
            weight = valid.to(loss.dtype)
            return (loss * weight).sum() / weight.sum().clamp(min=1.0) * self.scale
        dist_ap, dist_an = reference_weighted_mining(dist, same)
        return F.softplus(dist_ap - dist_an).mean() * self.scale

    def extra_repr(self) -> str:
        return f"exact_softmax={self.exact_softmax}, norm_feat={self.norm_feat}, scale={self.scale}"
