"""Multi-head attention with separate q/k/v projections to a (possibly narrower) internal width.

This is the SAM-style attention SeCap uses in its prompt and decoder modules: queries, keys and values
come from different token sets, each is projected by its own Linear (with bias) from ``dim`` to
``dim // downsample_rate``, attended per head, and projected back to ``dim``. ``nn.MultiheadAttention``
cannot narrow the internal width, hence this small module. Parameter names (``q_proj``, ``k_proj``,
``v_proj``, ``out_proj``) follow the reference so checkpoints map one to one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectedAttention(nn.Module):
    """softmax(q·kᵀ/√d_head)·v over ``num_heads`` heads of width ``dim // downsample_rate // num_heads``."""

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.dim = dim
        self.internal_dim = dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"{num_heads} heads do not divide the attention width {self.internal_dim}")
        self.q_proj = nn.Linear(dim, self.internal_dim)
        self.k_proj = nn.Linear(dim, self.internal_dim)
        self.v_proj = nn.Linear(dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attend B×Nq×D queries to B×Nk×D keys/values; returns B×Nq×D."""
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, internal_dim={self.internal_dim}, num_heads={self.num_heads}"
