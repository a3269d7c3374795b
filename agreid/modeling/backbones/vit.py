"""A timm Vision Transformer returning its normed token sequence, with optional overlapping patches."""
from __future__ import annotations

from functools import partial
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
from timm.layers import Format, nchw_to, to_2tuple
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from agreid.registries import BACKBONE_REGISTRY


def strided_grid(img_size: Sequence[int], patch_size: Sequence[int], stride: Sequence[int]) -> Tuple[int, int]:
    """Number of patch rows and columns a ``patch_size`` kernel moved by ``stride`` produces on ``img_size``."""
    return tuple((s - p) // t + 1 for s, p, t in zip(img_size, patch_size, stride))


class StridedPatchEmbed(nn.Module):
    """Patch embedding whose conv stride may be smaller than its kernel (TransReID overlapping patches).

    It exposes the attributes timm's ``VisionTransformer`` reads (``grid_size``, ``num_patches``,
    ``feat_ratio``), so the position embedding is sized to the strided grid.
    """

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, patch_size: int = 16,
                 in_chans: int = 3, embed_dim: int = 768, stride: Optional[int] = None,
                 norm_layer: Optional[Callable] = None, output_fmt: Optional[str] = None,
                 bias: bool = True, strict_img_size: bool = True, dynamic_img_pad: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__()
        if dynamic_img_pad:
            raise ValueError("StridedPatchEmbed does not pad images; give an input size the patches tile")
        self.patch_size = to_2tuple(patch_size)
        self.stride = to_2tuple(stride or patch_size)
        if any(t > p for t, p in zip(self.stride, self.patch_size)):
            raise ValueError(f"Patch stride {self.stride} must not exceed the patch size {self.patch_size}")
        self.img_size = to_2tuple(img_size)
        self.grid_size = strided_grid(self.img_size, self.patch_size, self.stride)
        if min(self.grid_size) < 1:
            raise ValueError(f"Image size {self.img_size} is smaller than the patch size {self.patch_size}")
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.output_fmt = Format(output_fmt) if output_fmt is not None else None
        self.strict_img_size = strict_img_size
        self.dynamic_img_pad = False
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.stride,
                              bias=bias, device=device, dtype=dtype)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def feat_ratio(self, as_scalar: bool = True) -> Union[int, Tuple[int, int]]:
        """Pixels between neighbouring tokens (the stride)."""
        return max(self.stride) if as_scalar else self.stride

    def dynamic_feat_size(self, img_size: Tuple[int, int]) -> Tuple[int, int]:
        """Token grid produced for an input of ``img_size``."""
        return strided_grid(img_size, self.patch_size, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.strict_img_size and tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(f"Input size {tuple(x.shape[-2:])} does not match the ViT's {self.img_size}; "
                             f"the model was built for INPUT.SIZE_TRAIN")
        x = self.proj(x)
        if self.output_fmt is None:
            x = x.flatten(2).transpose(1, 2)
        elif self.output_fmt != Format.NCHW:
            x = nchw_to(x, self.output_fmt)
        return self.norm(x)


class ViTBackbone(VisionTransformer):
    """timm ``VisionTransformer`` without a classifier whose forward returns the normed tokens (B×(1+N)×D).

    Token 0 is the class token (pool "token"); parameter names match timm's, so timm state dicts load directly.
    """

    def __init__(self, img_size: Tuple[int, int] = (256, 128), patch_size: int = 16,
                 stride_size: int = 16, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.1, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, dynamic_img_size: bool = False) -> None:
        super().__init__(
            img_size=tuple(img_size), patch_size=patch_size, num_classes=0, global_pool="token",
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            drop_path_rate=drop_path_rate, pos_drop_rate=drop_rate, proj_drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate, dynamic_img_size=dynamic_img_size,
            embed_layer=partial(StridedPatchEmbed, stride=stride_size),
        )
        self.out_dim = embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


@BACKBONE_REGISTRY.register("vit")
def build_vit(cfg) -> nn.Module:
    """ViT from MODEL.BACKBONE.VIT.* at INPUT.SIZE_TRAIN; other test sizes resample the position embedding."""
    v = cfg.MODEL.BACKBONE.VIT
    train_size = tuple(cfg.INPUT.SIZE_TRAIN)
    return ViTBackbone(
        img_size=train_size, patch_size=v.PATCH_SIZE, stride_size=v.STRIDE_SIZE,
        embed_dim=v.EMBED_DIM, depth=v.DEPTH, num_heads=v.NUM_HEADS, mlp_ratio=v.MLP_RATIO,
        drop_path_rate=v.DROP_PATH, drop_rate=v.DROP_RATE, attn_drop_rate=v.ATTN_DROP_RATE,
        dynamic_img_size=tuple(cfg.INPUT.SIZE_TEST) != train_size,
    )
