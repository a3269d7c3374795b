"""The View-Decoupled Transformer (VDT) encoder of VDT and SeCap: a ViT with a class and a view token.

Tokens are ``[CLS, VIEW, patches]`` with overlapping patches (:class:`StridedPatchEmbed`) and a
learnable position embedding with two prefix rows. Blocks are timm ``Block``s (LayerNorm eps 1e-6, qkv
bias, drop-path rising linearly to ``drop_path_rate``). "Inner subtraction" replaces the class token by
CLS − VIEW after blocks, so the class token is pushed to hold what the view token does not.

Two layouts, both reproducing the reference (wangshining681/SeCap-AGPReID) exactly:

- ``"vdt"`` (VDT): subtraction after every block, the last one included, then the final LayerNorm.
- ``"secap"`` (SeCap): subtraction after every block but the last. The reference runs its 12 ViT
  blocks' first 11, then a deep copy of the 12th block plus the final LayerNorm (``b1``) without
  subtraction; its original 12th block and LayerNorm are never used. Here blocks[-1] and ``norm`` *are*
  that copy, so ImageNet weights load by their timm names and reference checkpoints map ``b1`` onto them.
  The patch tokens handed to SeCap's decoder are the ones entering the last block (block 11's input in
  the reference's numbering: after 11 blocks, before ``b1``, not normalised).

Pretrained ImageNet weights (``jx_vit_base_p16_224``) load through :func:`load_multiview_pretrained`,
which keeps rows 0 and 1 of the 197-row position table as the CLS and VIEW rows (so VIEW starts from the
first grid position's embedding, a reference quirk) and bilinearly resizes grid rows 1..196 to the
strided grid.
"""
from __future__ import annotations

import logging
from functools import partial
from typing import NamedTuple, Optional, Tuple

import torch
from timm.models.vision_transformer import Block
from torch import nn

from agreid.registries import BACKBONE_REGISTRY

from ..layers.init import init_linear_trunc_normal
from ..pretrained import (LoadReport, adapt_state_dict, load_into, read_state_dict, resize_pos_embed,
                          strip_prefixes)
from .vit import StridedPatchEmbed

logger = logging.getLogger(__name__)

LAYOUTS = ("vdt", "secap")
NUM_PREFIX = 2


class MultiViewTokens(NamedTuple):
    """Encoder outputs: normed class and view tokens (B×D each), patch tokens entering the last block (B×N×D)."""

    global_feat: torch.Tensor
    view_feat: torch.Tensor
    patch_tokens: torch.Tensor


class MultiViewViT(nn.Module):
    """ViT over ``[CLS, VIEW, patches]`` with inner subtraction; forward returns :class:`MultiViewTokens`."""

    def __init__(self, img_size: Tuple[int, int] = (256, 128), patch_size: int = 16, stride_size: int = 16,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.1, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 inner_sub: bool = True, layout: str = "vdt") -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"Unknown multi-view ViT layout '{layout}'; choose one of {LAYOUTS}")
        self.layout = layout
        self.inner_sub = inner_sub
        self.out_dim = self.embed_dim = embed_dim
        self.patch_embed = StridedPatchEmbed(tuple(img_size), patch_size, 3, embed_dim, stride=stride_size)
        self.num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.view_token = nn.Parameter(torch.zeros(1, 1, embed_dim))  # zero-initialised, as in the reference
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + NUM_PREFIX, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]  # no tensor: meta-safe
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, proj_drop=drop_rate, attn_drop=attn_drop_rate,
                  drop_path=dpr[i], norm_layer=norm_layer)
            for i in range(depth))
        self.norm = norm_layer(embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks.apply(init_linear_trunc_normal)

    @staticmethod
    def _subtract(x: torch.Tensor) -> torch.Tensor:
        # CLS <- CLS - VIEW, out of place (the reference writes into x in place)
        return torch.cat([x[:, :1] - x[:, 1:2], x[:, 1:]], dim=1)

    def forward(self, x: torch.Tensor) -> MultiViewTokens:
        b = x.shape[0]
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.view_token.expand(b, -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
        last = len(self.blocks) - 1
        patches = x[:, NUM_PREFIX:]
        for i, blk in enumerate(self.blocks):
            if i == last:
                patches = x[:, NUM_PREFIX:]
            x = blk(x)
            if self.inner_sub and (i < last or self.layout == "vdt"):
                x = self._subtract(x)
        x = self.norm(x)
        return MultiViewTokens(x[:, 0], x[:, 1], patches)


def secap_pos_embed(posemb: torch.Tensor, new_grid: Tuple[int, int],
                    old_grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """The reference's resize of a one-prefix (ImageNet) table to two prefix rows.

    Rows 0 and 1 become the CLS and VIEW rows; rows 1.. (the whole old grid) are resized bilinearly to
    ``new_grid``, so the first grid row is used twice (reference behaviour).
    """
    grid = resize_pos_embed(posemb[:, 1:], tuple(new_grid), 0, old_grid, mode="bilinear")
    return torch.cat([posemb[:, :NUM_PREFIX], grid], dim=1)


def load_multiview_pretrained(model: MultiViewViT, path: str,
                              source_grid: Optional[Tuple[int, int]] = None) -> LoadReport:
    """Load ImageNet ViT weights (timm names) into ``model`` non-strictly, with SeCap's pos-embed rule.

    A table with one prefix row (ImageNet) is resized by :func:`secap_pos_embed`; one that already has
    the model's shape loads as is; the classifier (``head.*``) is ignored. Returns (and logs) the report.
    """
    report = LoadReport(path=path)
    state = {k: v for k, v in strip_prefixes(read_state_dict(path)).items() if not k.startswith("head")}
    pos = state.get("pos_embed")
    grid = model.patch_embed.grid_size
    if pos is not None and pos.shape != model.pos_embed.shape:
        old = source_grid or (int((pos.shape[1] - 1) ** 0.5),) * 2
        state["pos_embed"] = secap_pos_embed(pos, grid, source_grid)
        report.adapted["pos_embed"] = (f"grid {old[0]}x{old[1]} -> {grid[0]}x{grid[1]} (bilinear; rows 0,1 "
                                       f"kept as CLS, VIEW)")
    state = adapt_state_dict(state, model, report, source_grid)
    return load_into(model, state, report)


def build_multiview_vit(cfg, layout: str) -> MultiViewViT:
    """MultiViewViT from MODEL.BACKBONE.VIT.* and MODEL.SECAP.INNER_SUB at INPUT.SIZE_TRAIN, pretrained if set.

    MODEL.PRETRAIN_PATH is loaded here with the two-prefix-row rule; build it through this function (the
    VDT and SeCap meta-architectures do) rather than :func:`agreid.modeling.build_backbone`, whose generic
    loader cannot resize a one-prefix table to two prefix rows.
    """
    v = cfg.MODEL.BACKBONE.VIT
    if tuple(cfg.INPUT.SIZE_TEST) != tuple(cfg.INPUT.SIZE_TRAIN):
        raise ValueError("VDT/SeCap need INPUT.SIZE_TEST equal to INPUT.SIZE_TRAIN (fixed position table)")
    model = MultiViewViT(
        img_size=tuple(cfg.INPUT.SIZE_TRAIN), patch_size=v.PATCH_SIZE, stride_size=v.STRIDE_SIZE,
        embed_dim=v.EMBED_DIM, depth=v.DEPTH, num_heads=v.NUM_HEADS, mlp_ratio=v.MLP_RATIO,
        drop_path_rate=v.DROP_PATH, drop_rate=v.DROP_RATE, attn_drop_rate=v.ATTN_DROP_RATE,
        inner_sub=cfg.MODEL.SECAP.INNER_SUB, layout=layout)
    if cfg.MODEL.PRETRAIN_PATH:
        load_multiview_pretrained(model, cfg.MODEL.PRETRAIN_PATH)
    return model


@BACKBONE_REGISTRY.register("vit_multiview")
def build_vdt_vit(cfg) -> nn.Module:
    """VDT's encoder (``layout="vdt"``)."""
    return build_multiview_vit(cfg, "vdt")


@BACKBONE_REGISTRY.register("vit_multiview_secap")
def build_secap_vit(cfg) -> nn.Module:
    """SeCap's encoder (``layout="secap"``)."""
    return build_multiview_vit(cfg, "secap")
