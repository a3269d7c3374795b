"""TF-CLIP's Sequence-Specific Prompt (SSP): the CLIP-Memory attends to a tracklet's visual tokens.

Re-implements ``ImageSpecificPrompt`` and ``PromptGeneratorLayer`` of ``AsuradaYuci/TF-CLIP``
(``model/make_model_clipreid.py``). The K memory entries (one per training identity) go through
``text_proj`` (LN, Linear), the tracklet's tokens through ``memory_proj`` (LN, Linear, LN); each decoder
layer is pre-LN self-attention over the memory, pre-LN cross-attention to the tokens and a pre-LN QuickGELU
MLP, all residual; ``out_proj`` (LN, Linear) gives the prompt added to the memory by the caller.
Parameter names follow the reference so its checkpoints map one to one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from torch import nn

from .init import init_linear_trunc_normal


class SeparateQKVAttention(nn.Module):
    """Multi-head attention with bias-free q/k/v Linears and a biased output Linear (``proj``) + dropout."""

    def __init__(self, dim: int, num_heads: int, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"{num_heads} heads do not divide the width {dim}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """B×Nq×D queries attend to B×Nk×D keys / values; returns B×Nq×D."""
        out = F.scaled_dot_product_attention(self._heads(self.q_proj(q)), self._heads(self.k_proj(k)),
                                             self._heads(self.v_proj(v)))
        b, h, n, c = out.shape
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, h * c)))


class PromptGeneratorLayer(nn.Module):
    """Self-attention over the memory, cross-attention to the visual tokens, MLP; pre-LN, residual."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = SeparateQKVAttention(dim, num_heads, proj_drop=dropout)
        self.cross_attn = SeparateQKVAttention(dim, num_heads, proj_drop=dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), QuickGELU(), nn.Dropout(dropout), nn.Linear(dim * 4, dim))

    def forward(self, x: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h)
        x = x + self.cross_attn(self.norm2(x), visual, visual)
        return x + self.dropout(self.mlp(self.norm3(x)))


class SequenceSpecificPrompt(nn.Module):
    """SSP(M, v): a B×K×d prompt for the B×K×d memory ``M`` from the B×N×d visual tokens ``v``.

    ``alpha`` and ``norm`` exist in the reference but are never used in its forward; they are kept (and
    stay trainable, receiving no gradient) so reference checkpoints load strictly and the parameter counts
    match.
    """

    def __init__(self, dim: int = 512, layers: int = 2, num_heads: int = 0, dropout: float = 0.1,
                 alpha: float = 0.1) -> None:
        super().__init__()
        num_heads = num_heads or max(dim // 64, 1)
        self.norm = nn.LayerNorm(dim)
        self.memory_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.text_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.out_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.decoder = nn.ModuleList(PromptGeneratorLayer(dim, num_heads, dropout) for _ in range(layers))
        self.alpha = nn.Parameter(torch.full((dim,), float(alpha)))
        self.apply(init_linear_trunc_normal)

    def forward(self, memory: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """``memory`` B×K×d, ``visual`` B×N×d → prompt B×K×d."""
        visual = self.memory_proj(visual)
        x = self.text_proj(memory)
        for layer in self.decoder:
            x = layer(x, visual)
        return self.out_proj(x)


__all__ = ["SeparateQKVAttention", "PromptGeneratorLayer", "SequenceSpecificPrompt"]
