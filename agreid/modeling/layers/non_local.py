"""AGW's non-local block: dot-product self-attention over positions, divided by their number, as a residual.

Reference: ``Non_local`` of mangye16/Cross-Modal-Re-ID-baseline (``model.py``) and mangye16/ReID-Survey
(``modeling/layer/non_local.py``); the two differ only in key names (``g.0`` vs ``g``), which
:mod:`agreid.modeling.conversion.agw` renames.
"""
from __future__ import annotations

import torch
from torch import nn


def inner_width(in_channels: int, reduction: int) -> int:
    """Width of the θ / φ / g projections.

    ``reduction`` 0 reproduces both references: their ``reduc_ratio // reduc_ratio`` makes it **one channel**
    whatever the input width (an integer-division slip; the non-local paper and AGW's text use C / 2).
    ``reduction`` r > 0 gives ``in_channels // r`` (r = 2 is the paper's block); reference checkpoints then no
    longer fit.
    """
    if reduction < 0:
        raise ValueError(f"MODEL.AGW.NL_REDUCTION must be >= 0, got {reduction}")
    if reduction == 0:
        return 1
    if in_channels // reduction < 1:
        raise ValueError(f"MODEL.AGW.NL_REDUCTION {reduction} leaves no channel of {in_channels}")
    return in_channels // reduction


class NonLocalBlock(nn.Module):
    """``z = x + BN(W y)``, ``y_i = (1/N) Σ_j θ(x_i)·φ(x_j) g(x_j)`` over the N positions of a B×C×H×W map.

    θ, φ, g and W are 1×1 convolutions with bias; the affinity has no softmax (the "dot product" variant,
    normalised by N). The BN after W starts at zero weight and bias, so a fresh block is the identity.
    Without a softmax the product is associative: when the inner width is below N, ``θᵀ(φ gᵀ)`` is
    computed instead of ``(θᵀφ) gᵀ``, the same numbers without the N×N matrix.
    """

    def __init__(self, in_channels: int, reduction: int = 0) -> None:
        super().__init__()
        inner = inner_width(in_channels, reduction)
        self.inner_channels = inner
        self.theta = nn.Conv2d(in_channels, inner, kernel_size=1)
        self.phi = nn.Conv2d(in_channels, inner, kernel_size=1)
        self.g = nn.Conv2d(in_channels, inner, kernel_size=1)
        self.out_conv = nn.Conv2d(inner, in_channels, kernel_size=1)
        self.out_bn = nn.BatchNorm2d(in_channels)
        nn.init.zeros_(self.out_bn.weight)
        nn.init.zeros_(self.out_bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        theta = self.theta(x).flatten(2).transpose(1, 2)  # B×N×C'
        phi = self.phi(x).flatten(2)  # B×C'×N
        g = self.g(x).flatten(2).transpose(1, 2)  # B×N×C'
        if self.inner_channels < n:
            y = theta @ ((phi @ g) / n)
        else:
            y = ((theta @ phi) / n) @ g
        y = y.transpose(1, 2).reshape(b, self.inner_channels, h, w)
        return x + self.out_bn(self.out_conv(y))

    def extra_repr(self) -> str:
        return f"inner_channels={self.inner_channels}"
