"""CLIP as SVPR-ReID changes it (``model/backbone/clip/model_xhao.py``): a view token before the last image block
and a text tower with a longer context that returns every position.

- :class:`ViewTokenClipViT` is CLIP-ReID's :class:`~.clip_vit.ClipViT` (strided patches, bilinear grid resize,
  x11 / x12 / xproj) plus ``new_positional_embedding`` (1×D): a per-image view token (B×1×D) plus that embedding
  (no ``ln_pre``) is appended to the tokens entering the LAST block only, so x12 has 1 + N + 1 tokens.
- :class:`SVPRClip` holds the whole open_clip CLIP under the reference's names (``visual``, ``transformer``,
  ``token_embedding``, ``positional_embedding``, ``ln_final``, ``text_projection``, ``logit_scale``; the last two
  image/text parts the reference keeps but never uses are kept for parameter and checkpoint parity). Its text
  position embedding is resized from the file's 77 rows to ``context_length`` (SVPR: 100) by
  :func:`resize_text_positions`, and :meth:`SVPRClip.encode_embeddings` returns ``ln_final(x) @ text_projection``
  for EVERY position (callers pick the rows they need).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .clip_vit import ClipViT, ClipViTOutput


def resize_text_positions(posemb: torch.Tensor, length: int) -> torch.Tensor:
    """L×W text position embedding → ``length``×W: the first (SOT) and last rows kept, the L−2 rows between them
    linearly interpolated (align_corners False) to ``length`` − 2 (SVPR's ``resize_pos_embed_text``)."""
    if length == posemb.shape[0]:
        return posemb.clone()
    if length < 3:
        raise ValueError(f"A text context of {length} tokens is too short (SOT, text, EOT)")
    middle = posemb[1:-1].t().unsqueeze(0).float()
    middle = F.interpolate(middle, size=length - 2, mode="linear", align_corners=False)[0].t().to(posemb.dtype)
    return torch.cat([posemb[:1], middle, posemb[-1:]], dim=0)


def causal_mask(length: int) -> torch.Tensor:
    """Additive L×L mask: -inf above the diagonal (CLIP's text attention)."""
    return torch.full((length, length), float("-inf")).triu_(1)


class ViewTokenClipViT(ClipViT):
    """CLIP-ReID's image encoder with SVPR's view token at the input of the last block."""

    def __init__(self, visual: nn.Module, image_size: Sequence[int], stride: int = 16) -> None:
        super().__init__(visual, image_size, stride)
        width = self.out_dim
        self.new_positional_embedding = nn.Parameter(width ** -0.5 * torch.randn(1, width))

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def forward(self, images: torch.Tensor, view_token: Optional[torch.Tensor] = None,
                cls_embed: Optional[torch.Tensor] = None) -> ClipViTOutput:
        """x11 (B×(1+N)×D), x12 and xproj (B×(1+N+1)×· with ``view_token`` B×1×D appended before the last
        block, else B×(1+N)×·)."""
        x = self.embed(images, cls_embed)
        for block in self.blocks[:-1]:
            x = block(x)
        x11 = x
        if view_token is not None:
            x = torch.cat([x, view_token.to(x.dtype) + self.new_positional_embedding.to(x.dtype)], dim=1)
        x12 = self.ln_post(self.blocks[-1](x))
        return ClipViTOutput(x11, x12, x12 @ self.proj)


class SVPRClip(nn.Module):
    """The image and text towers of an open_clip ``CLIP`` under SVPR's names (see the module docstring)."""

    def __init__(self, clip_model: nn.Module, image_size: Sequence[int], stride: int = 16,
                 context_length: int = 100) -> None:
        super().__init__()
        self.visual = ViewTokenClipViT(clip_model.visual, image_size, stride)
        self.transformer = clip_model.transformer
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = nn.Parameter(
            resize_text_positions(clip_model.positional_embedding.detach(), context_length))
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.logit_scale = clip_model.logit_scale
        self.register_buffer("attn_mask", causal_mask(context_length), persistent=False)
        self.context_length = context_length

    @property
    def text_width(self) -> int:
        return self.token_embedding.weight.shape[1]

    @property
    def embed_dim(self) -> int:
        return self.text_projection.shape[1]

    def text_parameters(self):
        """The text tower's parameters (frozen by SVPR's FREEZE_TEXT): token and position embeddings, transformer,
        ln_final, text_projection."""
        yield self.token_embedding.weight
        yield self.positional_embedding
        yield from self.transformer.parameters()
        yield from self.ln_final.parameters()
        yield self.text_projection

    def encode_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """B×L×W token embeddings → B×L×d: causal transformer, ``ln_final`` and ``text_projection`` at every row."""
        if x.shape[1] != self.context_length:
            raise ValueError(f"SVPR's text tower takes {self.context_length} tokens, got {x.shape[1]} "
                             f"(MODEL.SVPR.TEXT_LENGTH must equal the data's caption_length)")
        x = x + self.positional_embedding.to(x.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask.to(x.dtype))
        return self.ln_final(x) @ self.text_projection


__all__ = ["SVPRClip", "ViewTokenClipViT", "resize_text_positions", "causal_mask"]
