"""SeCap's Local Feature Refinement Module (LFRM): a SAM-style two-way transformer decoder.

Query tokens (SeCap: ``[out_token; re-calibrated prompts]``) and image tokens (the ViT's patch tokens)
update each other for ``depth`` layers; a final block lets the queries attend to the image once more.
The query positional term is the initial query sequence itself, the key positional term a learnable
``image_pe``. All LayerNorms use torch's default eps 1e-5 and all MLPs are GELU (the reference accepts
an activation argument but never passes it on).

Reproduced reference behaviours (kept by default so reference checkpoints give the same outputs):

- layer 0's self-attention replaces the queries (no residual) and sees no positional term;
- the attentions inside the layers are narrowed to ``dim // downsample_rate`` (SeCap: 384 of 768);
- the final block's cross-attention is full width (its downsample argument is ignored in the
  reference) and the final block adds that output to ``queries + query_pe``, so the positional term
  sits inside the residual; its self-attention has no qkv bias; the decoder then returns
  ``LN(queries + final_block(...))``.
"""
from __future__ import annotations

from typing import Tuple

import torch
from timm.layers import Mlp
from timm.models.vision_transformer import Attention
from torch import nn

from .init import init_linear_trunc_normal

from .projected_attention import ProjectedAttention


class TwoWayAttentionBlock(nn.Module):
    """Query self-attention, query→image attention, query MLP, image→query attention (SAM's block)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, downsample_rate: int = 2,
                 skip_first_layer_pe: bool = False) -> None:
        super().__init__()
        self.self_attn = ProjectedAttention(dim, num_heads, downsample_rate)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = ProjectedAttention(dim, num_heads, downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = ProjectedAttention(dim, num_heads, downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Updated (queries, keys); shapes are kept."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys + key_pe, queries + query_pe, queries))
        return queries, keys


class OutAttentionBlock(nn.Module):
    """Final decoder block: LN(q + CA(q, k, v)) → LN(· + SA(·)) → LN(· + MLP(·)).

    ``q`` arrives with its positional term added, and the residual keeps it (reference behaviour).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=False)
        self.cross_attn = ProjectedAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x = self.norm1(q + self.cross_attn(q, k, v))
        x = self.norm2(x + self.attn(x))
        return self.norm3(x + self.mlp(x))


class TwoWayTransformer(nn.Module):
    """``depth`` :class:`TwoWayAttentionBlock`s, then :class:`OutAttentionBlock` and a residual LayerNorm."""

    def __init__(self, depth: int, dim: int, num_heads: int, mlp_ratio: float = 4.0,
                 downsample_rate: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_ratio, downsample_rate, skip_first_layer_pe=i == 0)
            for i in range(depth))
        self.final_attn_token_to_image = OutAttentionBlock(dim, num_heads, mlp_ratio)
        self.norm_final_attn = nn.LayerNorm(dim)
        self.apply(init_linear_trunc_normal)

    def forward(self, image_tokens: torch.Tensor, image_pe: torch.Tensor,
                query_tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Refined (queries B×Q×D, image tokens B×N×D); ``query_tokens`` also serve as the query positions."""
        queries, keys = query_tokens, image_tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_tokens, image_pe)
        out = self.final_attn_token_to_image(queries + query_tokens, keys + image_pe, keys)
        return self.norm_final_attn(queries + out), keys


