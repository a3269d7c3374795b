"""VDT (View-Decoupled Transformer): view-invariant re-ID features as class token minus view token.

The encoder (:class:`MultiViewViT`, layout ``vdt``) gives a global token g and a view token v; the
identity feature is f = g − v. Heads are fast-reid ``EmbeddingHead``s (:class:`EmbeddingHead`): one
identity head on f and a 2-class view head on v. Training losses, as in the reference
(wangshining681/SeCap-AGPReID, ``Baseline_multiview``):

- ``loss_cls_id``: fast-reid cross entropy (MODEL.LOSSES.CE) of the identity head;
- ``loss_triplet_id``: batch-hard triplet (MODEL.LOSSES.TRI; MARGIN <= 0 is the soft margin) on pre-BN f;
- ``loss_cls_view``: λ × cross entropy of the view head, label 1 for aerial and 0 otherwise;
- ``loss_oreg``: λ × mean |cos(f, v)| on the pre-BN features; λ = MODEL.SECAP.VIEW_LAMBDA.

Evaluation returns BN(f) (post-BN, D dims). The reference also runs the identity head on g in training
and discards the result; that updates the head's BN running statistics a second time per step, so it is
reproduced by default (MODEL.SECAP.HEADS_TWICE True; False runs the head once).

Inputs are agreid loader batches: ``images`` already normalised (use INPUT.NORM half, which equals the
reference's in-model (x − 127.5) / 127.5 on 0..255 pixels; the caller's tensor is never modified) and
``views`` in agreid codes (aerial 0). The view label is mapped at input, (views == 0), so the view
classifier keeps the reference's row order (row 1 = aerial) and reference checkpoints need no row swap.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn

from agreid.config.config import ConfigError
from agreid.registries import BACKBONE_REGISTRY, META_ARCH_REGISTRY

from ..backbones.vit_multiview import MultiViewTokens, MultiViewViT
from ..heads.embedding import EmbeddingHead
from ..losses.fastreid_cross_entropy import FastReIDCrossEntropyLoss
from ..losses.orthogonality import OrthogonalityLoss
from ..losses.triplet import TripletLoss

AERIAL = 0  # agreid's view code for aerial images


def view_labels(views: torch.Tensor) -> torch.Tensor:
    """The reference's 2-class view label from agreid view codes: aerial → 1, any other view → 0."""
    return (views == AERIAL).long()


def build_multiview_backbone(cfg, layout: str) -> MultiViewViT:
    """MODEL.BACKBONE.NAME from BACKBONE_REGISTRY, checked to be a :class:`MultiViewViT` of ``layout``."""
    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg)
    if not isinstance(backbone, MultiViewViT) or backbone.layout != layout:
        want = {"vdt": "vit_multiview", "secap": "vit_multiview_secap"}[layout]
        raise ConfigError(f"{cfg.MODEL.META_ARCHITECTURE} needs MODEL.BACKBONE.NAME '{want}', "
                         f"got '{cfg.MODEL.BACKBONE.NAME}'")
    return backbone


class VDT(nn.Module):
    """Multi-view ViT → identity head on g − v and view head on v; see the module docstring."""

    layout = "vdt"

    def __init__(self, backbone: MultiViewViT, num_classes: int, view_lambda: float = 0.001,
                 view_id: bool = True, view_oreg: bool = True, heads_twice: bool = True,
                 id_loss: Optional[nn.Module] = None, triplet_loss: Optional[nn.Module] = None) -> None:
        super().__init__()
        dim = backbone.out_dim
        self.backbone = backbone
        self.heads = EmbeddingHead(dim, num_classes)
        self.view_heads = EmbeddingHead(dim, 2)
        self.view_lambda = view_lambda
        self.view_id = view_id
        self.heads_twice = heads_twice
        self.id_loss = id_loss
        self.triplet_loss = triplet_loss
        self.oreg_loss = OrthogonalityLoss(view_lambda) if view_oreg else None

    @classmethod
    def from_config(cls, cfg, **extra) -> "VDT":
        """Backbone from MODEL.BACKBONE.*, heads for MODEL.HEADS.NUM_CLASSES, losses per MODEL.LOSSES.NAMES."""
        s, names = cfg.MODEL.SECAP, tuple(cfg.MODEL.LOSSES.NAMES)
        ce = FastReIDCrossEntropyLoss.from_config(cfg) if any("CrossEntropy" in n for n in names) else None
        tri = TripletLoss.from_config(cfg) if "TripletLoss" in names else None
        return cls(build_multiview_backbone(cfg, cls.layout), cfg.MODEL.HEADS.NUM_CLASSES,
                   view_lambda=s.VIEW_LAMBDA, view_id=s.VIEW_ID, view_oreg=s.VIEW_OREG,
                   heads_twice=s.HEADS_TWICE, id_loss=ce, triplet_loss=tri, **extra)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def local_feature(self, tokens: MultiViewTokens, inv: torch.Tensor) -> Optional[torch.Tensor]:
        """A second (local) identity feature B×D; none in VDT."""
        return None

    def forward(self, batch: Mapping[str, Any]) -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        """Losses (training) or test features (evaluation) for a loader batch; the batch is not modified."""
        images = batch["images"].to(self.device, non_blocking=True)
        if images.dim() != 4:
            raise ValueError(f"{type(self).__name__} takes image batches B×3×H×W, got shape {tuple(images.shape)}")
        tokens = self.backbone(images)
        inv = tokens.global_feat - tokens.view_feat
        local = self.local_feature(tokens, inv)
        if not self.training:
            return self.test_features(inv, local)
        targets = batch["targets"].to(self.device, non_blocking=True)
        return self.compute_losses(tokens, inv, local, targets, view_labels(batch["views"].to(self.device)))

    def test_features(self, inv: torch.Tensor, local: Optional[torch.Tensor]) -> torch.Tensor:
        """BN(g − v), followed by BN(local) when there is a local feature."""
        feat = self.heads(inv)
        return feat if local is None else torch.cat([feat, self.local_heads(local)], dim=1)

    def compute_losses(self, tokens: MultiViewTokens, inv: torch.Tensor, local: Optional[torch.Tensor],
                       targets: torch.Tensor, views: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Every enabled loss term, weighted, keyed as in the reference (``loss_cls_id``, ``loss_oreg``...)."""
        out = self.heads(inv)
        if self.heads_twice:
            self.heads(tokens.global_feat)  # reference quirk: output unused, BN statistics updated again
        local_out = self.local_heads(local) if local is not None else None
        view_out = self.view_heads(tokens.view_feat)
        losses = {}
        if self.id_loss is not None:
            losses["loss_cls_id"] = self.id_loss(out["cls_logits"], targets)
            if local_out is not None:
                losses["loss_cls_local"] = self.id_loss(local_out["cls_logits"], targets)
            if self.view_id:
                losses["loss_cls_view"] = self.id_loss(view_out["cls_logits"], views) * self.view_lambda
        if self.triplet_loss is not None:
            losses["loss_triplet_id"] = self.triplet_loss(out["features_before"], targets)
            if local_out is not None:
                losses["loss_triplet_local"] = self.triplet_loss(local_out["features_before"], targets)
        if self.oreg_loss is not None:
            losses["loss_oreg"] = self.oreg_loss(out["features_before"], view_out["features_before"])
        return losses


@META_ARCH_REGISTRY.register("VDT")
def build_vdt(cfg) -> nn.Module:
    """Registry builder: :class:`VDT` from the config."""
    return VDT.from_config(cfg)
