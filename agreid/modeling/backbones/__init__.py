"""Backbones registered in BACKBONE_REGISTRY, and :func:`build_backbone`."""
from torch import nn

from agreid.registries import BACKBONE_REGISTRY

from ..pretrained import load_pretrained
from .resnet import ResNetBackbone, build_resnet18, build_resnet50
from .resnet_nl import ResNetNL, build_resnet_nl
from .vit import StridedPatchEmbed, ViTBackbone, build_vit
from .vit_multiview import MultiViewViT
from .vit_transreid import TransReIDViT


def build_backbone(cfg) -> nn.Module:
    """The MODEL.BACKBONE.NAME backbone, with the local weights of MODEL.PRETRAIN_PATH loaded when set."""
    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg)
    if cfg.MODEL.PRETRAIN_PATH:
        load_pretrained(backbone, cfg.MODEL.PRETRAIN_PATH)
    return backbone


__all__ = ["build_backbone", "ResNetBackbone", "build_resnet18", "build_resnet50", "StridedPatchEmbed",
           "ViTBackbone", "build_vit", "MultiViewViT", "TransReIDViT", "ResNetNL", "build_resnet_nl"]
