"""AGW (Ye et al., TPAMI 2021): non-local ResNet-50, GeM pooling, BNNeck, ID + Weighted Regularized Triplet loss.

Two reference implementations, both selected by config (``configs/Base-AGW-VI.yml``, ``configs/Base-AGW.yml``):

- **two-stream visible-infrared** (mangye16/Cross-Modal-Re-ID-baseline, ``embed_net``): MODEL.AGW.TWO_STREAM
  True, one stem per modality routed by the batch's ``modalities`` (:class:`ResNetNL`), stem with ReLU, GeM
  ``(mean x³ + 1e-12)^(1/3)`` with fixed p (POOL ``gem_add_eps``), BNNeck weight drawn from N(1, 0.01)
  (MODEL.AGW.NECK_WEIGHT_STD 0.01), plain CE + WRT. Evaluation returns both features the reference
  reports, L2-normalised: ``{"pool": pre-BN, "bn": post-BN}`` (its "POOL" and "FC"), each scored as its own
  table; the reference keeps the checkpoint with the best BN rank-1 (TEST.BEST_METRIC ``Rank-1@bn``). Its
  ``Normalize`` divides by the norm without an epsilon; ``F.normalize`` differs only for an all-zero feature
  (0 instead of NaN).
- **single-modality** (mangye16/ReID-Survey, ``Baseline`` with ``resnet50_nl``): one stem without ReLU, GeM
  with learnable p clamped at 1e-6 (POOL ``gem_learn``), BNNeck weight 1, label-smoothed CE + WRT + center
  loss. Evaluation returns the BN feature (TEST_FEATURES ``["bn"]``, not normalised: the cosine metric does).

Both: ImageNet ResNet-50 (MODEL.PRETRAIN_PATH, torchvision layout) in every stem and the trunk, layer4
stride 1, classifier without bias drawn from N(0, 0.001), BNNeck bias frozen, triplet-type losses on the
pre-BN feature. The neck and classifier live under ``heads.``, so SOLVER.HEADS_LR_FACTOR sets their
learning rate relative to the backbone (the cross-modal reference: backbone 0.1 × the heads' lr).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from agreid.config.config import ConfigError
from agreid.registries import BACKBONE_REGISTRY, META_ARCH_REGISTRY

from ..backbones.resnet_nl import ResNetNL
from ..heads.bnneck import BNNeckHead
from .baseline import apply_losses, build_losses

TEST_FEATURES = ("pool", "bn")


class AGW(nn.Module):
    """:class:`ResNetNL` → :class:`BNNeckHead` (GeM, BN, classifier) and the MODEL.LOSSES.NAMES losses.

    Training returns ``{"loss_<name>": scalar}``; evaluation the features named in ``test_features``
    ("pool" before the neck, "bn" after), L2-normalised when ``normalize_test``: one B×D tensor when a
    single one is named, else a dict of them (each evaluated separately).
    """

    def __init__(self, backbone: ResNetNL, num_classes: int, losses: Sequence[nn.Module], pool: str = "gem_add_eps",
                 gem_p: float = 3.0, neck_weight_std: float = 0.0, test_features: Sequence[str] = TEST_FEATURES,
                 normalize_test: bool = True) -> None:
        super().__init__()
        unknown = [f for f in test_features if f not in TEST_FEATURES]
        if not test_features or unknown or len(set(test_features)) != len(test_features):
            raise ConfigError(f"MODEL.AGW.TEST_FEATURES must name distinct features among {TEST_FEATURES}, "
                              f"got {list(test_features)}")
        self.backbone = backbone
        self.heads = BNNeckHead(backbone.out_dim, num_classes=num_classes, pool=pool, gem_p=gem_p, neck_feat="after")
        if neck_weight_std > 0:
            nn.init.normal_(self.heads.bottleneck.weight, 1.0, neck_weight_std)
        self.losses = losses if isinstance(losses, nn.ModuleList) else nn.ModuleList(losses)
        self.test_features = tuple(test_features)
        self.normalize_test = normalize_test

    @classmethod
    def from_config(cls, cfg) -> "AGW":
        """Backbone MODEL.BACKBONE.NAME ``resnet50_nl`` (MODEL.AGW.*, MODEL.PRETRAIN_PATH loaded into every stem
        and the trunk), head from MODEL.HEADS.{NUM_CLASSES, POOL, GEM_P}, losses MODEL.LOSSES.NAMES."""
        if cfg.MODEL.BACKBONE.NAME != "resnet50_nl":
            raise ConfigError(f"META_ARCHITECTURE AGW needs MODEL.BACKBONE.NAME resnet50_nl, "
                              f"got '{cfg.MODEL.BACKBONE.NAME}'")
        backbone = BACKBONE_REGISTRY.get("resnet50_nl")(cfg)
        if cfg.MODEL.PRETRAIN_PATH:
            backbone.load_imagenet(cfg.MODEL.PRETRAIN_PATH)
        a = cfg.MODEL.AGW
        return cls(backbone, cfg.MODEL.HEADS.NUM_CLASSES, build_losses(cfg.MODEL.LOSSES.NAMES, cfg),
                   pool=cfg.MODEL.HEADS.POOL, gem_p=cfg.MODEL.HEADS.GEM_P, neck_weight_std=a.NECK_WEIGHT_STD,
                   test_features=tuple(a.TEST_FEATURES), normalize_test=a.NORMALIZE_TEST_FEATURES)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def features(self, batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """``pool`` (pre-BN) and ``bn`` (post-BN) features of a batch, B×D each."""
        device = self.device
        images = batch["images"].to(device, non_blocking=True)
        if images.dim() != 4:
            raise ValueError(f"AGW is an image model; got images of shape {tuple(images.shape)}")
        modalities = batch.get("modalities")
        if self.backbone.num_stems > 1 and not isinstance(modalities, torch.Tensor):
            raise ValueError("The two-stream AGW needs batch['modalities'] (0 visible, 1 infrared) to pick each "
                             "image's stem")
        fmap = self.backbone(images, modalities.to(device) if isinstance(modalities, torch.Tensor) else None)
        pooled = self.heads.pool(fmap)
        return {"pool": pooled, "bn": self.heads.bottleneck(pooled)}

    def forward(self, batch: Mapping[str, Any]) -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        """Losses (training) or test features (evaluation) of a loader batch (``images``, ``modalities``,
        ``targets``); the batch is not modified."""
        feats = self.features(batch)
        if not self.training:
            out = {name: F.normalize(feats[name], dim=1) if self.normalize_test else feats[name]
                   for name in self.test_features}
            return out[self.test_features[0]] if len(out) == 1 else out
        classifier = self.heads.classifier
        outputs = {"cls_logits": classifier(feats["bn"]) if classifier is not None else None,
                   "features_before": feats["pool"], "features_after": feats["bn"]}
        targets = batch["targets"].to(self.device, non_blocking=True)
        return apply_losses(self.losses, outputs, targets)


@META_ARCH_REGISTRY.register("AGW")
def build_agw(cfg) -> nn.Module:
    """Registry builder: :class:`AGW` from the config."""
    return AGW.from_config(cfg)
