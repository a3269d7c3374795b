"""Torchvision ResNet trunks without the classifier, returning the last feature map for re-ID heads."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from agreid.registries import BACKBONE_REGISTRY

_ARCHS = {
    18: (BasicBlock, [2, 2, 2, 2]),
    50: (Bottleneck, [3, 4, 6, 3]),
}


class ResNetBackbone(ResNet):
    """A torchvision ResNet minus ``avgpool``/``fc`` with a configurable last stride.

    Parameter names match torchvision's, so its ImageNet state dicts load without renaming.
    """

    def __init__(self, depth: int = 50, last_stride: int = 1) -> None:
        if depth not in _ARCHS:
            raise ValueError(f"ResNet depth must be one of {sorted(_ARCHS)}, got {depth}")
        if last_stride not in (1, 2):
            raise ValueError(f"MODEL.BACKBONE.LAST_STRIDE must be 1 or 2, got {last_stride}")
        block, layers = _ARCHS[depth]
        super().__init__(block, layers)
        del self.fc
        del self.avgpool
        self.depth = depth
        self.last_stride = last_stride
        self.out_dim = 512 * block.expansion
        if last_stride == 1:
            self._set_last_stride()

    def _set_last_stride(self) -> None:
        first = self.layer4[0]
        strided = first.conv2 if isinstance(first, Bottleneck) else first.conv1
        strided.stride = (1, 1)
        if first.downsample is not None:
            first.downsample[0].stride = (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@BACKBONE_REGISTRY.register("resnet18")
def build_resnet18(cfg) -> nn.Module:
    """ResNet-18 trunk (512 channels) from MODEL.BACKBONE.LAST_STRIDE."""
    return ResNetBackbone(18, cfg.MODEL.BACKBONE.LAST_STRIDE)


@BACKBONE_REGISTRY.register("resnet50")
def build_resnet50(cfg) -> nn.Module:
    """ResNet-50 trunk (2048 channels) from MODEL.BACKBONE.LAST_STRIDE."""
    return ResNetBackbone(50, cfg.MODEL.BACKBONE.LAST_STRIDE)
