"""fast-reid's identity cross entropy, whose normalisation differs from a plain mean.

fast-reid smooths towards ``epsilon / (C − 1)`` on the wrong classes (``1 − epsilon`` on the right one;
torch's ``label_smoothing`` spreads ``epsilon / C`` over all classes) and divides the summed loss by the
number of samples whose loss is non-zero, not by the batch size. The two agree while every sample has a
positive loss; they differ once some sample's loss is exactly 0 in floating point, which happens for
confident 2-class view logits (a logit gap above ~17 in float32). VDT and SeCap use this loss to match
the reference's training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from agreid.registries import LOSS_REGISTRY

from .cross_entropy import CrossEntropyLoss


def fastreid_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """Sum over samples of the (fast-reid smoothed) cross entropy, divided by the count of non-zero terms."""
    log_probs = F.log_softmax(logits, dim=1)
    with torch.no_grad():
        soft = torch.full_like(log_probs, epsilon / max(logits.size(1) - 1, 1))
        soft.scatter_(1, targets.view(-1, 1), 1.0 - epsilon)
    loss = (-soft * log_probs).sum(dim=1)
    nonzero = torch.count_nonzero(loss.detach()).clamp(min=1)  # a tensor: no host sync in the step
    return loss.sum() / nonzero


@LOSS_REGISTRY.register()
class FastReIDCrossEntropyLoss(CrossEntropyLoss):
    """:func:`fastreid_cross_entropy` times ``scale``; reads ``cls_logits``, reported as ``loss_cls``.

    Same options as :class:`CrossEntropyLoss` (MODEL.LOSSES.CE.*), fast-reid's normalisation and smoothing.
    """

    def __init__(self, epsilon: float = 0.0, scale: float = 1.0) -> None:
        super().__init__(epsilon, scale)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return fastreid_cross_entropy(logits, targets, self.epsilon) * self.scale
