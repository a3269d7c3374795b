"""The weight initialisation the ViT-era references share (timm's ``_init_weights``)."""
from __future__ import annotations

from torch import nn


def init_linear_trunc_normal(module: nn.Module) -> None:
    """For ``model.apply``: Linear weights truncated-normal (std 0.02) with zero biases; LayerNorms 1 / 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
