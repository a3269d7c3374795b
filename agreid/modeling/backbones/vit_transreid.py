"""TransReID's ViT (He et al., ICCV 2021): overlapping patches, SIE side-information embeddings, timm blocks.

A faithful re-implementation of the reference ``TransReID`` backbone (``damo-cv/TransReID``,
``model/backbones/vit_pytorch.py``) on timm's layers, so that its checkpoints load with equal outputs.
Parameter names equal the reference's (``cls_token``, ``pos_embed``, ``sie_embed``, ``patch_embed.proj``,
``blocks.N``, ``norm``); the unused ImageNet classifier ``fc`` is not instantiated.
"""
from __future__ import annotations

import logging
import math
from functools import partial
from typing import Optional, Sequence, Tuple

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from agreid.config.config import ConfigError
from agreid.registries import BACKBONE_REGISTRY

from ..layers.init import init_linear_trunc_normal
from ..layers.sie import sie_rows
from ..pretrained import LoadReport, load_into, read_state_dict, resize_pos_embed, strip_prefixes
from .vit import StridedPatchEmbed

logger = logging.getLogger(__name__)




def sie_mode(num_cameras: int, num_views: int) -> str:
    """Which SIE table the reference builds: camera×view if both counts exceed 1, else the one that does.

    Reference quirk kept: a count of 1 (or 0) disables that embedding, since one entry carries no information.
    """
    if num_cameras > 1 and num_views > 1:
        return "camera_view"
    if num_cameras > 1:
        return "camera"
    if num_views > 1:
        return "view"
    return "none"


class TransReIDViT(nn.Module):
    """ViT with overlapping patches whose tokens get ``pos_embed + sie_coe · sie_embed[index]`` added.

    * Patch embedding: a ``patch_size`` conv moved by ``stride_size`` (:class:`StridedPatchEmbed`), weight
      initialised N(0, √(2/n)) with n = k·k·out_channels, bias left at PyTorch's default, as the reference.
    * SIE: one (1×D) embedding per camera, per view, or per (camera, view) pair (index
      ``camera · num_views + view``), truncated-normal std 0.02, added to **every** token (class token
      included) together with the position embedding, times ``sie_coe``.
    * Blocks: timm ``Block`` (qkv bias, exact GELU, LayerNorm eps 1e-6), stochastic depth rising linearly
      from 0 to ``drop_path_rate``; Linear weights truncated-normal std 0.02 with zero bias.

    ``forward`` returns the token sequence B×(1+N)×D after the final norm, or, once :meth:`drop_last_block`
    has been called (TransReID's JPM), the tokens entering the removed last block, without norm.
    """

    def __init__(self, img_size: Sequence[int] = (256, 128), patch_size: int = 16, stride_size: int = 16,
                 in_chans: int = 3, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, num_cameras: int = 0,
                 num_views: int = 0, sie_coe: float = 3.0) -> None:
        super().__init__()
        self.embed_dim = self.out_dim = embed_dim
        self.patch_embed = StridedPatchEmbed(img_size=tuple(img_size), patch_size=patch_size, in_chans=in_chans,
                                             embed_dim=embed_dim, stride=stride_size)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.num_cameras, self.num_views, self.sie_coe = num_cameras, num_views, sie_coe
        self.sie_mode = sie_mode(num_cameras, num_views)
        sizes = {"camera_view": num_cameras * num_views, "camera": num_cameras, "view": num_views}
        if self.sie_mode != "none":
            self.sie_embed = nn.Parameter(torch.zeros(sizes[self.sie_mode], 1, embed_dim))
            trunc_normal_(self.sie_embed, std=0.02)
        self.pos_drop = nn.Dropout(p=drop_rate)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, proj_drop=drop_rate,
                  attn_drop=attn_drop_rate, drop_path=dpr[i], norm_layer=norm_layer)
            for i in range(depth))
        self.norm = norm_layer(embed_dim)
        trunc_normal_(self.cls_token, std=0.02)
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(init_linear_trunc_normal)
        proj = self.patch_embed.proj
        n = proj.kernel_size[0] * proj.kernel_size[1] * proj.out_channels
        nn.init.normal_(proj.weight, 0.0, math.sqrt(2.0 / n))

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {"pos_embed", "cls_token"}

    def drop_last_block(self) -> Tuple[nn.Module, nn.Module]:
        """Remove the last block and the final norm (JPM runs them as copies); return both.

        The reference keeps them in the backbone although they never run; agreid drops them so the
        model holds only parameters that take part in the forward.
        """
        last, norm = self.blocks[-1], self.norm
        self.blocks = self.blocks[:-1]
        self.norm = nn.Identity()
        return last, norm

    def sie_index(self, camids: Optional[torch.Tensor], views: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Row of ``sie_embed`` for each image (None without SIE), see :func:`sie_rows`."""
        return sie_rows(self.sie_mode, camids, views, self.num_cameras, self.num_views)

    def forward(self, x: torch.Tensor, camids: Optional[torch.Tensor] = None,
                views: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Token sequence B×(1+N)×D for images ``x`` (B×3×H×W, already normalised)."""
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        index = self.sie_index(camids, views)
        x = x + self.pos_embed
        if index is not None:
            x = x + self.sie_coe * self.sie_embed[index.to(x.device).long()]
        x = self.pos_drop(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


def load_transreid_pretrained(model: TransReIDViT, path: str) -> LoadReport:
    """Load ImageNet ViT weights (timm / ``jx_vit_base_p16_224`` layout) the way TransReID's ``load_param`` does.

    Keys containing ``head`` or ``dist`` are skipped; a flat patch weight is reshaped to the conv kernel; a
    differently sized ``pos_embed`` has its grid part resized **bilinearly** to the strided grid with the class
    row kept (a DeiT distillation row is dropped first). Shape mismatches are skipped and reported.
    """
    report = LoadReport(path=path)
    state = strip_prefixes(read_state_dict(path))
    target = model.state_dict()
    kept = {}
    for key, value in state.items():
        if "head" in key or "dist" in key:
            report.unexpected.append(key)
            continue
        if key == "patch_embed.proj.weight" and value.dim() < 4 and key in target:
            value = value.reshape(target[key].shape[0], -1, *target[key].shape[2:])
            report.adapted[key] = "flat weight reshaped to the conv kernel"
        elif key == "pos_embed" and key in target and value.shape != target[key].shape:
            if "dist_token" in state:
                value = torch.cat([value[:, :1], value[:, 2:]], dim=1)
            grid = model.patch_embed.grid_size
            value = resize_pos_embed(value, grid, num_prefix=1, mode="bilinear")
            report.adapted[key] = f"grid resized bilinearly to {grid[0]}x{grid[1]}, class row kept"
        kept[key] = value
    return load_into(model, kept, report)


def build_transreid_vit(cfg, load_pretrain: bool = True) -> TransReIDViT:
    """:class:`TransReIDViT` from MODEL.BACKBONE.VIT.*, MODEL.SIE.* and MODEL.NUM_CAMERAS / NUM_VIEWS.

    With ``load_pretrain``, MODEL.PRETRAIN_PATH (when set) is loaded by :func:`load_transreid_pretrained`
    (bilinear pos-embed resize). SIE needs the camera / view counts: the trainer fills them from the training
    data, and they must be given (MODEL.NUM_CAMERAS, MODEL.NUM_VIEWS) to build the model from a config alone.
    Camera ids and view codes index the table directly, so a count must exceed the largest id or code used.
    """
    v, sie = cfg.MODEL.BACKBONE.VIT, cfg.MODEL.SIE
    num_cameras = cfg.MODEL.NUM_CAMERAS if sie.CAMERA else 0
    num_views = cfg.MODEL.NUM_VIEWS if sie.VIEW else 0
    if sie.CAMERA and num_cameras <= 0:
        raise ConfigError("MODEL.SIE.CAMERA needs MODEL.NUM_CAMERAS (cameras in the training data, largest id + 1)")
    if sie.VIEW and num_views <= 0:
        raise ConfigError("MODEL.SIE.VIEW needs MODEL.NUM_VIEWS (largest training view code + 1)")
    model = TransReIDViT(
        img_size=tuple(cfg.INPUT.SIZE_TRAIN), patch_size=v.PATCH_SIZE, stride_size=v.STRIDE_SIZE,
        embed_dim=v.EMBED_DIM, depth=v.DEPTH, num_heads=v.NUM_HEADS, mlp_ratio=v.MLP_RATIO,
        drop_rate=v.DROP_RATE, attn_drop_rate=v.ATTN_DROP_RATE, drop_path_rate=v.DROP_PATH,
        num_cameras=num_cameras, num_views=num_views, sie_coe=sie.COE)
    if load_pretrain and cfg.MODEL.PRETRAIN_PATH:
        load_transreid_pretrained(model, cfg.MODEL.PRETRAIN_PATH)
    return model


@BACKBONE_REGISTRY.register("vit_transreid")
def _build_vit_transreid(cfg) -> nn.Module:
    """Registry builder without pretrained loading: :func:`build_backbone` then loads MODEL.PRETRAIN_PATH with
    its generic (bicubic) loader. The ``TransReID`` meta-architecture instead loads TransReID's way (bilinear)."""
    return build_transreid_vit(cfg, load_pretrain=False)
