"""SVPR-ReID (AAAI 2026): view-decoupled CLIP with attribute mixture-of-experts and progressive refinement.

Re-implements ``CLIP_SVPR_ReID`` of ``ahu-xhao/SVPR-ReID`` (``model/make_model_clipreid_xhao.py``) and its loss
combination (``processor/processor_clipreid_xhao.py``, ``loss/make_loss.py``) on open_clip towers, single-stage
from the OpenAI CLIP file. State-dict keys equal the reference's (``BACKBONE.*``, ``TextNet.*``,
``inverseNet_{T2I,P2I}``, ``VBD``, ``ASMOE``, ``CVPRNet``, ``header*``, ``use_cvpr_token``, ``local_weight``), so
its saved ``model.state_dict()`` files load as they are (:mod:`agreid.modeling.conversion.svpr` handles the rest).

Forward (B images, their caption tokens ``captions`` and SVPR view labels ``svpr_views``, also at test time):
text token (:mod:`..layers.svpr_text`) → MLP → D; view token → MLP → D, appended before the last ViT block
(:mod:`..backbones.svpr_clip`); VBD on (CLS, view token) (:mod:`..layers.vbd`); ASMoE on the text token, the
view-free CLS and the patches (:mod:`..layers.asmoe`); CVPR (:mod:`..layers.cvpr`); the local feature
mean(patches ⊙ tanh(W)) over the patches after ``patches + 0.1 · refined``. Test feature: pre-BN
cat[view-free CLS, CVPR token, local, attribute] (3072 for ViT-B/16; 2304 without attributes).

Losses: ID (label-smoothed CE) ``ID_LOSS_WEIGHT`` · [CE(cls) + mean(CE(cvpr), CE(local))]; soft-margin triplet
``TRIPLET_LOSS_WEIGHT`` · [Tri(cls) + mean(Tri(cvpr), Tri(local), Tri(x11 CLS))]; view ``VIEW_LOSS_WEIGHT`` ·
[smoothed CE of the 3-class view head + mean|cos(cls, view feature)|]; ``ATTR_LOSS_WEIGHT`` · Σ attribute CE.

Reference quirks kept by default (switch in MODEL.SVPR): the view CE smooths with ε / (number of IDENTITIES)
(``VIEW_SMOOTHING_OVER_IDS``); the residual ``patches + 0.1 · refined`` also scales every unselected patch by
1.1 (``CVPR_RESIDUAL_ALL``); CVPR's batch-coupled context and misplaced patch updates (see ``..layers.cvpr``);
the 128-patch local weight (``LOCAL_PATCHES``); view label 2 picks the end-of-text embedding
(``VIEW_WORD_INDEX``). Attributes: none configured (CARGO, A = 0) turns the attribute branch off (the
reference crashes there); unknown labels (-1) are left out of the attribute CE. SIE is not supported (off in
every SVPR config).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from agreid.config.config import ConfigError
from agreid.registries import META_ARCH_REGISTRY

from ..backbones.svpr_clip import SVPRClip
from ..layers.asmoe import AttributeScatterMoE
from ..layers.cvpr import ContextVisionRefinement
from ..layers.svpr_blocks import BNClassifier, PlainMLP
from ..layers.svpr_text import HybridTextEncoder
from ..layers.vbd import ViewBidirectionalDecoupling
from ..losses.cross_entropy import CrossEntropyLoss
from ..losses.triplet import TripletLoss
from .clipreid import CLIPReID, batch_tensor


def smoothed_ce(logits: torch.Tensor, targets: torch.Tensor, epsilon: float, num_classes: int) -> torch.Tensor:
    """CE against (1 − ε)·one-hot + ε / ``num_classes`` (``CrossEntropyLabelSmooth``; ``num_classes`` may differ
    from the logit width, as in the reference's view loss)."""
    log_probs = logits.log_softmax(dim=1)
    target = F.one_hot(targets, logits.shape[1]).to(log_probs.dtype) * (1 - epsilon) + epsilon / num_classes
    return (-target * log_probs).mean(0).sum()


class SVPR(nn.Module):
    """SVPR-ReID (see the module docstring); single stage, everything but the text tower trained."""

    # the reference's never-used parameters (CVPR's score projections and ln_norm, every cross-attention's normy,
    # every MLP's norm_layer, CLIP's logit_scale and visual.proj) are kept for checkpoint parity: no gradient
    ddp_find_unused_parameters = True

    def __init__(self, clip_model: nn.Module, num_classes: int, image_size: Tuple[int, int], stride: int = 16,
                 attribute_names: Sequence[str] = (), attribute_classes: Sequence[int] = (),
                 text_length: int = 100, text_prompts: int = 4, view_prompts: int = 4, view_classes: int = 3,
                 view_word_index: Sequence[int] = (), local_patches: int = 128, prompt_dropout: float = 0.1,
                 num_experts: int = 4, expert_topk: int = 3, attribute_topk: float = 0.7, cvpr_stages: int = 3,
                 cvpr_topk: float = 0.5, cvpr_residual: float = 0.1, cvpr_residual_all: bool = True,
                 cvpr_batch_context: bool = True, cvpr_scatter_by_score: bool = True,
                 id_weight: float = 0.25, triplet_weight: float = 1.0, view_weight: float = 1.0,
                 attr_weight: float = 0.05, view_smoothing_over_ids: bool = True, freeze_text: bool = True,
                 id_loss: Optional[nn.Module] = None, triplet_loss: Optional[nn.Module] = None) -> None:
        super().__init__()
        from agreid.data.captions import CaptionOptions

        if num_classes <= 0:
            raise ConfigError("SVPR-ReID needs MODEL.HEADS.NUM_CLASSES (the training identities) for its heads")
        if not hasattr(clip_model.visual, "class_embedding"):
            raise ConfigError("SVPR-ReID is built on a CLIP ViT (MODEL.CLIP.NAME ViT-B-16), not a ResNet")
        if len(attribute_names) != len(attribute_classes):
            raise ConfigError(f"MODEL.ATTRIBUTE_NAMES ({len(attribute_names)}) and ATTRIBUTE_CLASSES "
                              f"({len(attribute_classes)}) must list the same attributes")
        self.BACKBONE = SVPRClip(clip_model, image_size, stride, text_length)
        dim, proj = self.BACKBONE.visual.out_dim, self.BACKBONE.embed_dim
        patches = self.BACKBONE.visual.num_patches
        if local_patches and local_patches != patches:
            raise ConfigError(
                f"SVPR's local branch has a {local_patches}-patch weight (MODEL.SVPR.LOCAL_PATCHES; the reference "
                f"hard-codes 128 = 256x128 at stride 16) but INPUT.SIZE_TRAIN {list(image_size)} with "
                f"MODEL.CLIP.STRIDE_SIZE {stride} gives {self.BACKBONE.visual.grid_size[0]}x"
                f"{self.BACKBONE.visual.grid_size[1]} = {patches} patches; set LOCAL_PATCHES {patches} (or 0)")
        self.num_classes, self.dim = num_classes, dim
        template = CaptionOptions(context_length=text_length, num_prompts=view_prompts).view_caption()
        try:
            self.TextNet = HybridTextEncoder(self.BACKBONE.token_embedding, proj, template, text_length,
                                             text_prompts, view_prompts, word_index=view_word_index)
        except ValueError as e:
            raise ConfigError(f"MODEL.SVPR: {e}") from None
        self.inverseNet_T2I = PlainMLP(proj, proj * 4, dim, dropout=prompt_dropout)
        self.inverseNet_P2I = PlainMLP(proj, proj * 4, dim, dropout=prompt_dropout)
        self.VBD = ViewBidirectionalDecoupling(dim)
        self.header_view = BNClassifier(dim, view_classes)
        self.attribute_names = list(attribute_names)
        if attribute_names:
            try:
                self.ASMOE = AttributeScatterMoE(attribute_names, attribute_classes, dim, num_experts=num_experts,
                                                 expert_topk=expert_topk, topk_ratio=attribute_topk)
            except ValueError as e:
                raise ConfigError(f"MODEL.SVPR: {e}") from None
        self.use_cvpr_token = nn.Parameter(torch.zeros(1, 1, dim))
        trunc_normal_(self.use_cvpr_token, std=0.02)
        self.CVPRNet = ContextVisionRefinement(dim, stages=cvpr_stages, topk=cvpr_topk,
                                               batch_context=cvpr_batch_context,
                                               scatter_by_score=cvpr_scatter_by_score)
        self.header_cvpr = BNClassifier(dim, num_classes)
        self.local_weight = nn.Parameter(torch.randn(local_patches or patches, dim))
        self.header_local = BNClassifier(dim, num_classes)
        self.header = BNClassifier(dim, num_classes)
        self.cvpr_residual, self.cvpr_residual_all = cvpr_residual, cvpr_residual_all
        self.id_weight, self.triplet_weight, self.view_weight, self.attr_weight = \
            id_weight, triplet_weight, view_weight, attr_weight
        self.view_smoothing_over_ids = view_smoothing_over_ids
        self.id_loss = id_loss or CrossEntropyLoss(epsilon=0.1)
        self.triplet_loss = triplet_loss or TripletLoss(margin=0.0)
        if freeze_text:
            for p in self.BACKBONE.text_parameters():
                p.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg) -> "SVPR":
        """CLIP from MODEL.PRETRAIN_PATH / MODEL.CLIP.*, heads for MODEL.HEADS.NUM_CLASSES, everything else from
        MODEL.SVPR.* (attributes: MODEL.ATTRIBUTE_NAMES / ATTRIBUTE_CLASSES, filled by the trainer from the
        training set when empty), grid from INPUT.SIZE_TRAIN and MODEL.CLIP.STRIDE_SIZE."""
        s = cfg.MODEL.SVPR
        if cfg.MODEL.SIE.CAMERA or cfg.MODEL.SIE.VIEW:
            raise ConfigError("SVPR-ReID does not support SIE (off in every reference config): set MODEL.SIE.CAMERA "
                              "and MODEL.SIE.VIEW False")
        names, classes = list(cfg.MODEL.ATTRIBUTE_NAMES), [int(c) for c in cfg.MODEL.ATTRIBUTE_CLASSES]
        if classes and not names:
            names = [f"attribute_{i}" for i in range(len(classes))]
        return cls(CLIPReID.clip_from_config(cfg), num_classes=cfg.MODEL.HEADS.NUM_CLASSES,
                   image_size=tuple(cfg.INPUT.SIZE_TRAIN), stride=cfg.MODEL.CLIP.STRIDE_SIZE,
                   attribute_names=names, attribute_classes=classes, text_length=s.TEXT_LENGTH,
                   text_prompts=s.TEXT_PROMPTS, view_prompts=s.VIEW_PROMPTS, view_classes=s.VIEW_CLASSES,
                   view_word_index=list(s.VIEW_WORD_INDEX), local_patches=s.LOCAL_PATCHES,
                   prompt_dropout=s.PROMPT_DROPOUT, num_experts=s.NUM_EXPERTS, expert_topk=s.EXPERT_TOPK,
                   attribute_topk=s.ATTRIBUTE_TOPK, cvpr_stages=s.CVPR_STAGES, cvpr_topk=s.CVPR_TOPK,
                   cvpr_residual=s.CVPR_RESIDUAL, cvpr_residual_all=s.CVPR_RESIDUAL_ALL,
                   cvpr_batch_context=s.CVPR_BATCH_CONTEXT, cvpr_scatter_by_score=s.CVPR_SCATTER_BY_SCORE,
                   id_weight=s.ID_LOSS_WEIGHT, triplet_weight=s.TRIPLET_LOSS_WEIGHT, view_weight=s.VIEW_LOSS_WEIGHT,
                   attr_weight=s.ATTR_LOSS_WEIGHT, view_smoothing_over_ids=s.VIEW_SMOOTHING_OVER_IDS,
                   freeze_text=s.FREEZE_TEXT, id_loss=CrossEntropyLoss.from_config(cfg),
                   triplet_loss=TripletLoss.from_config(cfg))

    @property
    def device(self) -> torch.device:
        return self.local_weight.device

    # ------------------------------------------------------------------ forward
    def side_inputs(self, batch: Mapping[str, Any]) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """(caption tokens B×L, SVPR view labels B, attribute labels B×A or None) of ``batch``."""
        device = self.device
        tokens, views = batch_tensor(batch, "captions", device), batch_tensor(batch, "svpr_views", device)
        if tokens is None or views is None:
            raise ValueError("SVPR-ReID needs each image's caption tokens and SVPR view label ('captions', "
                             "'svpr_views'), also at test time: load the data with DATASETS.OPTIONS "
                             "'[\"captions=svpr\"]'")
        return tokens.long(), views.long(), batch_tensor(batch, "attribute_labels", device)

    def features(self, images: torch.Tensor, tokens: torch.Tensor, views: torch.Tensor,
                 attr_labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Every feature of the forward (pre-BN): cls, cvpr, local, attr (absent without attributes), x11, view,
        and the summed attribute CE ``attr_ce`` when ``attr_labels`` is given."""
        text_raw, view_raw = self.TextNet(self.BACKBONE, tokens, views)
        text_prompt, view_prompt = self.inverseNet_T2I(text_raw), self.inverseNet_P2I(view_raw)
        out = self.BACKBONE.visual(images, view_token=view_prompt.unsqueeze(1))
        x12 = out.x12
        cls_inv, view_feat = self.VBD(x12[:, 0], x12[:, -1])
        patches = x12[:, 1:-1]
        feats = {"cls": cls_inv, "x11": out.x11[:, 0], "view": view_feat}
        attr_feat = None
        if self.attribute_names:
            attr_feat, attr_ce = self.ASMOE(text_prompt, cls_inv, patches, attr_labels)
            feats["attr"] = attr_feat
            if attr_ce is not None:
                feats["attr_ce"] = attr_ce
        token = self.use_cvpr_token.expand(images.shape[0], -1, -1)
        feats["cvpr"], refined, touched = self.CVPRNet(cls_inv, patches, token, attr_feat)
        if not self.cvpr_residual_all:
            refined = refined * touched.unsqueeze(-1).to(refined.dtype)
        patches = patches + refined * self.cvpr_residual
        feats["local"] = (patches * torch.tanh(self.local_weight)).mean(dim=1)
        return feats

    def forward(self, batch: Mapping[str, Any]) -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        """Evaluation: the pre-BN test feature. Training: the loss terms."""
        images = batch["images"].to(self.device, non_blocking=True)
        if images.dim() == 5:
            raise ValueError("SVPR-ReID is an image model; got a B×S×3×H×W video batch")
        tokens, views, attr_labels = self.side_inputs(batch)
        feats = self.features(images, tokens, views, attr_labels if self.training else None)
        if not self.training:
            parts = [feats["cls"], feats["cvpr"], feats["local"]] + ([feats["attr"]] if "attr" in feats else [])
            return torch.cat(parts, dim=1)
        return self.losses(feats, batch["targets"].to(self.device, non_blocking=True), views)

    def losses(self, feats: Mapping[str, torch.Tensor], targets: torch.Tensor,
               views: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The reference's ID, triplet, view and attribute terms (each already weighted)."""
        scores = [head(feats[k])[0] for head, k in ((self.header, "cls"), (self.header_cvpr, "cvpr"),
                                                     (self.header_local, "local"))]
        ce = [self.id_loss(s, targets) for s in scores]
        tri = [self.triplet_loss(feats[k], targets) for k in ("cls", "cvpr", "local", "x11")]
        view_logits = self.header_view(feats["view"])[0]
        eps = getattr(self.id_loss, "epsilon", 0.1)
        view_k = self.num_classes if self.view_smoothing_over_ids else view_logits.shape[1]
        view_ce = smoothed_ce(view_logits, views, eps, view_k)
        oreg = F.cosine_similarity(feats["cls"], feats["view"], dim=1).abs().mean()
        losses = {"loss_cls": self.id_weight * (ce[0] + sum(ce[1:]) / len(ce[1:])),
                  "loss_triplet": self.triplet_weight * (tri[0] + sum(tri[1:]) / len(tri[1:])),
                  "loss_view": self.view_weight * (view_ce + oreg)}
        if "attr_ce" in feats:
            losses["loss_attr"] = self.attr_weight * feats["attr_ce"]
        return losses


@META_ARCH_REGISTRY.register("SVPR")
def build_svpr(cfg) -> nn.Module:
    """Registry builder: :class:`SVPR` from the config."""
    return SVPR.from_config(cfg)
