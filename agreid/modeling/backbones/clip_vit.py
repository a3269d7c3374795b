"""CLIP's ViT image encoder as the CLIP-ReID family changes it: strided patches, a resized grid, CLS-only SIE and
three outputs (tokens before the last block, after it, and projected).

Built from open_clip's ``VisionTransformer`` (its conv, embeddings, norms and residual blocks are adopted as they
are, so the state-dict keys are OpenAI's ``visual.*`` names without the prefix). What changes (Syliz517/CLIP-ReID
``model/clip/model.py``, reused by MSP, TF-CLIP and SVPR-ReID):

- the patch conv keeps its kernel and moves by ``stride`` (16 → 16×8 grid at 256×128, 12 → 21×10);
- the position embedding keeps its CLS row and has its square grid resized to the new one with
  ``F.interpolate`` (bilinear, align_corners False, no antialias; X-TFCLIP uses bicubic);
- a per-image vector (SIE, a frame embedding) may be added to the CLS token only, before the position
  embedding and ``ln_pre`` (TransReID adds SIE to every token instead);
- ``forward`` returns x11 (tokens after all blocks but the last, no ``ln_post``), x12 (after the last block and
  ``ln_post``) and xproj = x12 @ proj, for every token.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class ClipViTOutput(NamedTuple):
    """Token sequences B×(1+N)×·, CLS first: ``x11`` (before the last block), ``x12`` (after it and ln_post),
    ``xproj`` (x12 projected to the joint space)."""

    x11: torch.Tensor
    x12: torch.Tensor
    xproj: torch.Tensor


def strided_grid(image_size: Sequence[int], patch_size: int, stride: int) -> Tuple[int, int]:
    """Patch grid (rows, cols) of a ``patch_size`` conv moved by ``stride`` over an H×W image (no padding)."""
    h, w = image_size
    if h < patch_size or w < patch_size:
        raise ValueError(f"Input {h}x{w} is smaller than the {patch_size}-pixel patch")
    return (h - patch_size) // stride + 1, (w - patch_size) // stride + 1


def resize_grid_embedding(posemb: torch.Tensor, new_grid: Tuple[int, int], mode: str = "bilinear",
                          num_prefix: int = 1) -> torch.Tensor:
    """(P+n²)×D embedding with its square n×n grid resized to ``new_grid`` (``F.interpolate``, align_corners
    False, no antialias); the P prefix rows are kept. Used for the ViT position embedding and RN50's attention
    pool."""
    prefix, grid = posemb[:num_prefix], posemb[num_prefix:]
    side = round(grid.shape[0] ** 0.5)
    if side * side != grid.shape[0]:
        raise ValueError(f"Cannot resize a {grid.shape[0]}-row grid embedding: not a square grid")
    if (side, side) == tuple(new_grid):
        return posemb.clone()
    grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(new_grid), mode=mode, align_corners=False).to(posemb.dtype)
    return torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], -1)], dim=0)


class ClipViT(nn.Module):
    """CLIP ViT image encoder for re-ID (see the module docstring); ``out_dim`` / ``proj_dim`` are the widths of
    x12 and xproj (768 / 512 for ViT-B/16)."""

    def __init__(self, visual: nn.Module, image_size: Sequence[int], stride: int = 16,
                 resize_mode: str = "bilinear") -> None:
        """Adopt the parts of open_clip ``visual`` (a ``VisionTransformer`` holding pretrained or random weights)
        and adapt them to ``image_size`` (H, W) with patch stride ``stride``; the position embedding is resized
        with ``resize_mode``."""
        super().__init__()
        if getattr(visual, "attn_pool", None) is not None or not hasattr(visual, "class_embedding"):
            raise ValueError("ClipViT needs a plain CLIP VisionTransformer (class token, no attentional pooler)")
        patch = visual.conv1.kernel_size[0]
        self.grid_size = strided_grid(image_size, patch, stride)
        self.conv1 = visual.conv1
        self.conv1.stride = (stride, stride)
        self.class_embedding = visual.class_embedding
        self.positional_embedding = nn.Parameter(
            resize_grid_embedding(visual.positional_embedding.detach(), self.grid_size, resize_mode))
        self.ln_pre = visual.ln_pre
        self.transformer = visual.transformer
        self.ln_post = visual.ln_post
        self.proj = visual.proj
        self.out_dim = self.class_embedding.shape[0]
        self.proj_dim = self.proj.shape[1]

    @property
    def blocks(self) -> nn.ModuleList:
        """The residual attention blocks (open_clip's, batch-first)."""
        return self.transformer.resblocks

    def embed(self, images: torch.Tensor, cls_embed: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Tokens entering the first block, B×(1+N)×D: patches, CLS (+ ``cls_embed`` B×D), position, ln_pre."""
        x = self.conv1(images.to(self.conv1.weight.dtype))
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        if cls_embed is not None:
            cls = cls + cls_embed.to(x.dtype).unsqueeze(1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)

    def forward(self, images: torch.Tensor, cls_embed: Optional[torch.Tensor] = None) -> ClipViTOutput:
        """x11, x12 and xproj for B×3×H×W ``images``; ``cls_embed`` (B×D, e.g. SIE) is added to the CLS token."""
        x = self.embed(images, cls_embed)
        for block in self.blocks[:-1]:
            x = block(x)
        x11 = x
        x12 = self.ln_post(self.blocks[-1](x11))
        return ClipViTOutput(x11, x12, x12 @ self.proj)


__all__ = ["ClipViT", "ClipViTOutput", "strided_grid", "resize_grid_embedding"]
