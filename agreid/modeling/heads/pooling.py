"""Global pooling of a backbone output into one vector per image, chosen by name.

Feature maps (B×C×H×W) are pooled over space; token sequences (B×(1+N)×D, class token first) are
pooled over their patch tokens, except by ``token`` pooling, which takes the class token.
"""
from __future__ import annotations

import torch
from torch import nn


def _spatial(x: torch.Tensor) -> torch.Tensor:
    """View a feature map or token sequence as B×C×L with L the positions to pool over."""
    if x.dim() == 4:
        return x.flatten(2)
    if x.dim() == 3:
        return x[:, 1:].transpose(1, 2)
    raise ValueError(f"Pooling expects B×C×H×W feature maps or B×N×D token sequences, got shape {tuple(x.shape)}")


class AvgPool(nn.Module):
    """Mean over positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _spatial(x).mean(dim=2)


class MaxPool(nn.Module):
    """Maximum over positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _spatial(x).amax(dim=2)


class GeMPool(nn.Module):
    """Generalised mean ``(mean x^p)^(1/p)`` over positions, with a fixed or learnable exponent ``p``.

    Inputs are clamped to ``eps`` first, so it suits non-negative (post-ReLU) features.
    """

    def __init__(self, p: float = 3.0, learnable: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM exponent must be positive, got {p}")
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _spatial(x).clamp(min=self.eps)
        return x.pow(self.p).mean(dim=2).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.3f}, learnable={self.p.requires_grad}, eps={self.eps}"


class TokenPool(nn.Module):
    """The first token of a sequence (the ViT class token)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"'token' pooling needs a B×N×D token sequence (a ViT backbone), got shape "
                             f"{tuple(x.shape)}; use avg, max or gem for feature maps")
        return x[:, 0]


POOLINGS = ("avg", "max", "gem", "gem_learn", "token")


def build_pooling(name: str, gem_p: float = 3.0) -> nn.Module:
    """Pooling module by name: avg, max, gem (fixed p = ``gem_p``), gem_learn (learnable p), token."""
    if name == "avg":
        return AvgPool()
    if name == "max":
        return MaxPool()
    if name in ("gem", "gem_learn"):
        return GeMPool(gem_p, learnable=name == "gem_learn")
    if name == "token":
        return TokenPool()
    raise KeyError(f"Unknown MODEL.HEADS.POOL '{name}'. Choose one of: {', '.join(POOLINGS)}")
