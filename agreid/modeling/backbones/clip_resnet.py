"""CLIP's ModifiedResNet (RN50) image encoder as CLIP-ReID changes it: layer4 at stride 1 and an attention pool
whose position embedding is resized to the feature grid.

Built from open_clip's ``ModifiedResNet`` (stem, bottlenecks and ``AttentionPool2d`` adopted as they are, so the
keys are OpenAI's ``visual.*`` names without the prefix). Changes (Syliz517/CLIP-ReID ``model/clip/model.py``):
the first layer4 bottleneck loses its two 2×2 average pools (main path and shortcut), giving a 16×8 map at
256×128, and ``attnpool.positional_embedding`` has its 7×7 grid resized bilinearly to that map (mean-token row
kept). ``forward`` returns layer3's map, layer4's map and the attention-pool output (its mean-token row).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from .clip_vit import resize_grid_embedding


class ClipResNetOutput(NamedTuple):
    """``x3``: layer3 map B×(16w)×h×w (w = stem width), ``x4``: layer4 map B×(32w)×h×w, ``xproj``: attention-pool
    feature B×d."""

    x3: torch.Tensor
    x4: torch.Tensor
    xproj: torch.Tensor


class ClipResNet(nn.Module):
    """CLIP ModifiedResNet for re-ID; ``out_dim`` is layer4's width (2048 for RN50), ``proj_dim`` the attention
    pool's output (1024)."""

    def __init__(self, visual: nn.Module, image_size: Sequence[int], resize_mode: str = "bilinear") -> None:
        """Adopt open_clip ``visual`` (a ``ModifiedResNet``), set layer4 to stride 1 and resize the attention
        pool's position embedding to the layer4 grid of ``image_size`` (H, W): (H/16, W/16)."""
        super().__init__()
        for name in ("conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3", "bn3", "act3", "avgpool",
                     "layer1", "layer2", "layer3", "layer4", "attnpool"):
            setattr(self, name, getattr(visual, name))
        first = self.layer4[0]
        first.avgpool = nn.Identity()
        if first.downsample is not None:
            first.downsample[0] = nn.Identity()  # the "-1" AvgPool2d of the shortcut
        h, w = image_size
        if h % 16 or w % 16:
            raise ValueError(f"ClipResNet needs an input size divisible by 16, got {h}x{w}")
        self.grid_size = (h // 16, w // 16)
        pos = self.attnpool.positional_embedding.detach()
        self.attnpool.positional_embedding = nn.Parameter(resize_grid_embedding(pos, self.grid_size, resize_mode))
        self.out_dim = self.layer4[-1].bn3.num_features
        self.proj_dim = self.attnpool.c_proj.out_features

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.act3(self.bn3(self.conv3(x)))
        return self.avgpool(x)

    def forward(self, images: torch.Tensor) -> ClipResNetOutput:
        """Layer3 / layer4 maps and the attention-pool feature of B×3×H×W ``images``."""
        x = self.stem(images.to(self.conv1.weight.dtype))
        x3 = self.layer3(self.layer2(self.layer1(x)))
        x4 = self.layer4(x3)
        return ClipResNetOutput(x3, x4, self.attnpool(x4))


__all__ = ["ClipResNet", "ClipResNetOutput"]
