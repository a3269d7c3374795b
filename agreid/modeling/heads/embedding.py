"""fast-reid's ``EmbeddingHead`` as used by VDT and SeCap: no pooling, BNNeck, bias-free linear classifier.

It is :class:`BNNeckHead` on already pooled B×D features (identity pooling), with fast-reid's
initialisation (classifier N(0, 0.01), BN weight 1 and bias 0, the bias frozen). Training returns
``cls_logits`` (from the BN feature), ``features_before`` (for the triplet / orthogonality losses) and
``features_after``; evaluation returns the post-BN feature, as fast-reid does whatever NECK_FEAT says.
fast-reid keeps the BN as a BatchNorm2d on 1×1 maps and the classifier as a bare ``weight``; the
numbers are the same and :mod:`agreid.modeling.conversion.fastreid_secap` renames the keys.
"""
from __future__ import annotations

from torch import nn

from .bnneck import BNNeckHead


class EmbeddingHead(BNNeckHead):
    """BNNeck head over B×D features with fast-reid's initialisation; evaluation gives the post-BN feature."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__(in_dim, num_classes=num_classes, pool="token", neck_feat="after", cls_bias=False)
        self.pool = nn.Identity()
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.01)
