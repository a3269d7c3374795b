"""TF-CLIP's Temporal Memory Diffusion (TMD): frames exchange a message token, then diffuse it into their tokens.

Re-implements ``Temporal_Memory_Difusion`` / ``CrossFramelAttentionBlock`` of ``AsuradaYuci/TF-CLIP``
(``model/make_model_clipreid.py``), batch-first. Per block:

- TMC: each frame's message = ``message_fc``(mean of its tokens); the T messages of a tracklet pass through
  pre-LN (``message_ln``) self-attention ``message_attn`` with a residual;
- MD: the message is appended to its frame's tokens (L → L+1) and a standard pre-LN CLIP block (``attn``,
  ``ln_1``; QuickGELU MLP ``mlp.c_fc`` / ``mlp.c_proj``, ``ln_2``) runs over them.

Each block adds one token, as in the reference. Names follow the reference (``resblocks.<i>.*``).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from open_clip.transformer import LayerNorm, QuickGELU
from torch import nn


class CrossFrameAttentionBlock(nn.Module):
    """One TMC + MD block over (B·T)×L×D frame tokens of B tracklets of ``num_frames`` frames."""

    def __init__(self, dim: int, num_heads: int, num_frames: int) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.message_fc = nn.Linear(dim, dim)
        self.message_ln = LayerNorm(dim)
        self.message_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.ln_1 = LayerNorm(dim)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(dim, dim * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(dim * 4, dim))]))
        self.ln_2 = LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B·T)×L×D → (B·T)×(L+1)×D; frames of one tracklet are consecutive rows."""
        bt, _, d = x.shape
        if bt % self.num_frames:
            raise ValueError(f"TMD expects B·{self.num_frames} frames, got {bt}")
        msg = self.message_fc(x.mean(dim=1)).view(bt // self.num_frames, self.num_frames, d)
        h = self.message_ln(msg)
        msg = msg + self.message_attn(h, h, h, need_weights=False)[0]
        x = torch.cat([x, msg.reshape(bt, 1, d)], dim=1)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class TemporalMemoryDiffusion(nn.Module):
    """``layers`` :class:`CrossFrameAttentionBlock` in sequence (TF-CLIP uses one, width 768, 12 heads)."""

    def __init__(self, dim: int, layers: int, num_heads: int, num_frames: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[CrossFrameAttentionBlock(dim, num_heads, num_frames)
                                         for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


__all__ = ["CrossFrameAttentionBlock", "TemporalMemoryDiffusion"]
