"""SeCap (CVPR 2025): VDT encoder + prompt re-calibration (PRM) + two-way local decoder (LFRM).

On top of :class:`VDT`'s identity feature g − v (encoder layout ``secap``, see
:mod:`agreid.modeling.backbones.vit_multiview`), L learnable prompts (MODEL.SECAP.PROMPT_LEN) are
re-calibrated on g − v by :class:`PromptRecalibration` (skipped with MODEL.SECAP.USE_PRM False), then
``[out_token; prompts]`` and the patch tokens taken before the encoder's last block are refined by a
:class:`TwoWayTransformer` of MODEL.SECAP.PROMPT_DEPTH layers with a learnable key position table
``image_pe``; token 0 of its output is the local feature. A third head (``local_heads``) adds
``loss_cls_local`` and ``loss_triplet_local``; evaluation returns cat[BN(g − v), BN(local)] (2·D dims).

Reference: wangshining681/SeCap-AGPReID, ``Baseline_multiview_SeCap``. Its ``prm.attn2`` and
``lfrm.out_token`` are never used and are not instantiated here (the used out-token is ``out_token``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from agreid.registries import META_ARCH_REGISTRY

from ..backbones.vit_multiview import MultiViewTokens, MultiViewViT
from ..heads.embedding import EmbeddingHead
from ..layers import PromptRecalibration, TwoWayTransformer
from .vdt import VDT


class SeCap(VDT):
    """:class:`VDT` plus prompts, PRM, LFRM and a local identity head; see the module docstring."""

    layout = "secap"

    def __init__(self, backbone: MultiViewViT, num_classes: int, prompt_len: int = 64, prompt_depth: int = 2,
                 use_prm: bool = True, attn_downsample: int = 2, **kwargs) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        dim = backbone.out_dim
        num_heads = backbone.blocks[0].attn.num_heads
        mlp_ratio = backbone.blocks[0].mlp.fc1.out_features / dim
        self.use_prm = use_prm
        self.prompt = nn.Parameter(torch.zeros(1, prompt_len, dim))
        self.image_pe = nn.Parameter(torch.zeros(1, backbone.num_patches, dim))
        self.out_token = nn.Parameter(torch.zeros(1, dim))
        for p in (self.prompt, self.image_pe, self.out_token):
            nn.init.trunc_normal_(p, std=0.02)
        self.prm = PromptRecalibration(dim, num_heads, mlp_ratio)  # kept with USE_PRM False: same checkpoints
        self.lfrm = TwoWayTransformer(prompt_depth, dim, num_heads, mlp_ratio, attn_downsample)
        self.local_heads = EmbeddingHead(dim, num_classes)

    @classmethod
    def from_config(cls, cfg, **extra) -> "SeCap":
        """:meth:`VDT.from_config` plus MODEL.SECAP.{PROMPT_LEN, PROMPT_DEPTH, USE_PRM, ATTN_DOWNSAMPLE}."""
        s = cfg.MODEL.SECAP
        return super().from_config(cfg, prompt_len=s.PROMPT_LEN, prompt_depth=s.PROMPT_DEPTH,
                                   use_prm=s.USE_PRM, attn_downsample=s.ATTN_DOWNSAMPLE, **extra)

    def local_feature(self, tokens: MultiViewTokens, inv: torch.Tensor) -> Optional[torch.Tensor]:
        """The LFRM's out-token (B×D) for the image's patch tokens and its re-calibrated prompts."""
        b = inv.shape[0]
        prompts = self.prompt.expand(b, -1, -1)
        if self.use_prm:
            prompts = self.prm(prompts, inv.unsqueeze(1))
        queries = torch.cat([self.out_token.unsqueeze(0).expand(b, -1, -1), prompts], dim=1)
        refined, _ = self.lfrm(tokens.patch_tokens, self.image_pe.expand(b, -1, -1), queries)
        return refined[:, 0]


@META_ARCH_REGISTRY.register("SeCap")
def build_secap(cfg) -> nn.Module:
    """Registry builder: :class:`SeCap` from the config."""
    return SeCap.from_config(cfg)
