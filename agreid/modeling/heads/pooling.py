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

    Two stabilisations, as the AGW references compute it: ``eps_mode="clamp"`` clamps the inputs to ``eps``
    first (ReID-Survey's ``GeneralizedMeanPoolingP``, fast-reid), ``"add"`` adds ``eps`` to the mean instead,
    ``(mean x^p + eps)^(1/p)`` without a clamp (Cross-Modal-Re-ID-baseline's ``embed_net``, eps 1e-12). Both
    suit non-negative (post-ReLU) features. A learnable ``p`` is a parameter (state-dict key ``p``); a fixed
    one is a constant, neither a parameter nor saved.
    """

    def __init__(self, p: float = 3.0, learnable: bool = False, eps: float = 1e-6, eps_mode: str = "clamp") -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM exponent must be positive, got {p}")
        if eps_mode not in ("clamp", "add"):
            raise ValueError(f"GeM eps_mode must be 'clamp' or 'add', got '{eps_mode}'")
        if learnable:
            self.p = nn.Parameter(torch.tensor(float(p)))
        else:
            self.register_buffer("p", torch.tensor(float(p)), persistent=False)
        self.eps = eps
        self.eps_mode = eps_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _spatial(x)
        if self.eps_mode == "clamp":
            return x.clamp(min=self.eps).pow(self.p).mean(dim=2).pow(1.0 / self.p)
        return (x.pow(self.p).mean(dim=2) + self.eps).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return (f"p={self.p.item():.3f}, learnable={self.p.requires_grad}, eps={self.eps}, "
                f"eps_mode={self.eps_mode}")


class TokenPool(nn.Module):
    """The first token of a sequence (the ViT class token)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"'token' pooling needs a B×N×D token sequence (a ViT backbone), got shape "
                             f"{tuple(x.shape)}; use avg, max or gem for feature maps")
        return x[:, 0]


POOLINGS = ("avg", "max", "gem", "gem_learn", "gem_add_eps", "token")


def build_pooling(name: str, gem_p: float = 3.0) -> nn.Module:
    """Pooling module by name: avg, max, gem (fixed p = ``gem_p``), gem_learn (learnable p), gem_add_eps
    (fixed p, ``(mean x^p + 1e-12)^(1/p)``: the cross-modal AGW), token."""
    if name == "avg":
        return AvgPool()
    if name == "max":
        return MaxPool()
    if name in ("gem", "gem_learn"):
        return GeMPool(gem_p, learnable=name == "gem_learn")
    if name == "gem_add_eps":
        return GeMPool(gem_p, learnable=False, eps=1e-12, eps_mode="add")
    if name == "token":
        return TokenPool()
    raise KeyError(f"Unknown MODEL.HEADS.POOL '{name}'. Choose one of: {', '.join(POOLINGS)}")
