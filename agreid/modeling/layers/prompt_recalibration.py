"""SeCap's Prompt Re-calibration Module (PRM): condition learnable prompts on each image's view-free feature.

The prompts (B×L×D) cross-attend to the view-decoupled feature g − v (B×1×D), then attend to each other,
then pass an MLP; each step is residual and followed by a LayerNorm (eps 1e-5, torch's default, unlike
the ViT's 1e-6). As in the reference, the prompt self-attention has no qkv bias, and with a single key
the cross-attention's softmax weight is always 1, so its output is ``out_proj(v_proj(g − v))`` for every
prompt (its q/k projections exist, and are trained to no effect, only to keep the reference's layout).
The reference's unused ``attn2`` (for a 'cat' mode that is never configured) is not instantiated.
"""
from __future__ import annotations

import torch
from timm.layers import Mlp
from timm.models.vision_transformer import Attention
from torch import nn

from .projected_attention import ProjectedAttention


class PromptRecalibration(nn.Module):
    """LN(P + CA(P, f, f)) → LN(· + SA(·)) → LN(· + MLP(·)) for prompts P and view-free features f."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.cross_attn = ProjectedAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, prompts: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Re-calibrated B×L×D prompts from B×L×D ``prompts`` and B×M×D ``features`` (M = 1 in SeCap)."""
        x = self.norm1(prompts + self.cross_attn(prompts, features, features))
        x = self.norm2(x + self.attn(x))
        return self.norm3(x + self.mlp(x))
