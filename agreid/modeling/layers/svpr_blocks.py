"""Token attention, MLP and classifier blocks of SVPR-ReID (ahu-xhao/SVPR-ReID ``model/attention.py``, ``Header``).

They keep the reference's parameter names (``q_``/``k_``/``v_``/``proj``, ``qkv``, ``layers.<i>``, ``bottleneck``
/ ``classifier``) so its checkpoints load without renaming, including parameters the reference builds but never
uses (the ``normy`` LayerNorm of every cross-attention, the ``norm_layer`` of every MLP): they are kept for
parameter-count and checkpoint parity.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn



def _tokens(x: torch.Tensor) -> torch.Tensor:
    """B×D → B×1×D (a single token); B×N×D unchanged."""
    return x.unsqueeze(1) if x.dim() == 2 else x


class TokenCrossAttention(nn.Module):
    """Multi-head attention from queries ``q`` (B×Nq×D) to keys/values ``k``/``v`` (Bk×Nk×D), no residual.

    q/k/v projections have no bias; ``proj`` has one. B×D inputs are read as one token. ``normy`` is built but
    unused (as in the reference). Keys may have a batch size that broadcasts against the queries' (SDPA rules).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"TokenCrossAttention: width {dim} is not divisible by {num_heads} heads")
        self.normy = nn.LayerNorm(dim)
        self.num_heads = num_heads
        self.q_ = nn.Linear(dim, dim, bias=qkv_bias)
        self.k_ = nn.Linear(dim, dim, bias=qkv_bias)
        self.v_ = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.reshape(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: Optional[torch.Tensor] = None) -> torch.Tensor:
        q, k = _tokens(q), _tokens(k)
        v = k if v is None else _tokens(v)
        x = F.scaled_dot_product_attention(self._heads(self.q_(q)), self._heads(self.k_(k)), self._heads(self.v_(v)))
        return self.proj(x.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1))


class TokenSelfAttention(nn.Module):
    """Multi-head self-attention over B×N×D tokens (fused ``qkv`` without bias, ``proj`` with bias)."""

    def __init__(self, dim: int, num_heads: int = 8) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class PlainMLP(nn.Module):
    """Linear → GELU → dropout → Linear → dropout (the reference ``MLP`` with one hidden layer).

    ``norm_layer`` (LayerNorm of the input) is built but unused, as in the reference.
    """

    def __init__(self, in_dim: int, hidden_dim: Optional[int] = None, out_dim: Optional[int] = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        hidden_dim, out_dim = hidden_dim or in_dim, out_dim or in_dim
        self.norm_layer = nn.LayerNorm(in_dim)
        self.layers = nn.ModuleList([nn.Linear(in_dim, hidden_dim), nn.Linear(hidden_dim, out_dim)])
        self.activation = nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.activation(self.layers[0](x)))
        return self.drop(self.layers[1](x))


class BNClassifier(nn.Module):
    """BatchNorm1d with a frozen zero bias, then a bias-free Linear initialised N(0, 0.001) (the ``Header``).

    ``forward`` returns (logits, normalised feature).
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)
        self.bottleneck = nn.BatchNorm1d(dim)
        self.bottleneck.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        feat = self.bottleneck(x)
        return self.classifier(feat), feat


__all__ = ["TokenCrossAttention", "TokenSelfAttention", "PlainMLP", "BNClassifier"]
