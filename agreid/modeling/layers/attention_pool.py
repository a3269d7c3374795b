"""Pooling over one axis: the plain mean (TF-CLIP) or X-TFCLIP's learned attention pooling.

``AttentionPooling`` re-implements ``TemporalAttentionPooling`` of ``BiDAlab/X-TFCLIP``
(``model/make_model_clipreid.py``): a score MLP (D → hidden, tanh, → 1), softmax over the pooled axis,
weighted sum. The reference calls it on its "time" axis 1 for every input shape, which is also how it pools
the 130 TMD tokens of a frame and, for a B×T×N×d token tensor, the T frames of each token.
"""
from __future__ import annotations

import torch
from torch import nn


class AttentionPooling(nn.Module):
    """softmax(MLP(x)) -weighted sum of ``x`` over ``dim`` (parameters ``attn_mlp.{0,2}``)."""

    def __init__(self, in_dim: int, hidden_dim: int = 0, dim: int = 1) -> None:
        super().__init__()
        hidden_dim = hidden_dim or in_dim // 2
        self.dim = dim
        self.attn_mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.attn_mlp(x), dim=self.dim)
        return (x * weights).sum(dim=self.dim)


class MeanPooling(nn.Module):
    """The mean over ``dim`` (no parameters)."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.dim)


def build_axis_pooling(attention: bool, in_dim: int, dim: int = 1) -> nn.Module:
    """:class:`AttentionPooling` when ``attention`` else :class:`MeanPooling`, over axis ``dim``."""
    return AttentionPooling(in_dim, dim=dim) if attention else MeanPooling(dim)


__all__ = ["AttentionPooling", "MeanPooling", "build_axis_pooling"]
