"""CLIP-ReID (Li et al., AAAI 2023): two-stage prompt learning on CLIP (ViT-B/16 or RN50), with SIE and
overlapping patches.

Re-implements ``build_transformer`` / ``PromptLearner`` / ``TextEncoder`` of ``Syliz517/CLIP-ReID``
(``model/make_model_clipreid.py``), its two training stages (``processor/processor_clipreid_stage{1,2}.py``)
and its loss combination (``loss/make_loss.py``, ``loss/supcontrast.py``) on open_clip towers. State-dict keys
equal the reference's (``image_encoder.*``, ``text_encoder.*``, ``prompt_learner.*``, ``classifier[_proj]``,
``bottleneck[_proj]``, ``cv_embed``), so its saved ``model.state_dict()`` files load as they are.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn
from timm.layers import trunc_normal_

from agreid.config.config import ConfigError
from agreid.registries import META_ARCH_REGISTRY

from ..backbones.clip_loading import clip_dims_from_config, load_clip
from ..layers.sie import SIE_MODES, sie_rows
from ..backbones.clip_resnet import ClipResNet
from ..backbones.clip_text import ClipTextEncoder, PromptLearner
from ..backbones.clip_vit import ClipViT
from ..losses.cross_entropy import CrossEntropyLoss
from ..losses.supcon import SupConLoss
from ..losses.triplet import TripletLoss
from ..stages import StageContext, StageSpec, freeze_all_but

FROZEN_IN_IMAGE_STAGE = ("prompt_learner.", "text_encoder.", "bottleneck.bias", "bottleneck_proj.bias")


def clip_sie_mode(camera: bool, view: bool) -> str:
    """CLIP-ReID's SIE table from its two flags (unlike TransReID, a count of 1 still builds the table)."""
    return "camera_view" if camera and view else "camera" if camera else "view" if view else "none"


def batch_tensor(batch: Mapping[str, Any], key: str, device: torch.device) -> Optional[torch.Tensor]:
    value = batch.get(key)
    return value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else None


class CLIPReID(nn.Module):
    """CLIP image encoder + BNNecks, a frozen text encoder and identity prompts; trained in two stages.

    Stage "prompt" (:meth:`begin_stage`): everything but ``prompt_learner.cls_ctx`` frozen; the projected CLS
    feature of every training image is computed once (test transforms, no SIE, encoder in eval mode) and batches
    of (feature, identity) train the prompts with the image→text and text→image SupCon losses (unnormalised
    features, temperature 1). Stage "image": the prompt learner, text encoder and BNNeck biases are frozen, the
    text features of all identities are computed once, and the image encoder is trained with
    ``ID_LOSS_WEIGHT`` · Σ label-smoothed CE over the two classifiers + ``TRIPLET_LOSS_WEIGHT`` · Σ batch-hard
    triplet over [x11 CLS, x12 CLS, projected CLS] (RN50: GAP(layer3), GAP(layer4), attention pool) +
    ``I2T_LOSS_WEIGHT`` · CE(projected feature @ text featuresᵀ). Evaluation returns cat[f, f_proj] before
    (NECK_FEAT "before", 1280 / 3072) or after the BNNecks.

    SIE (ViT only): ``sie_coe · cv_embed[row]`` added to the CLS token before the position embedding, row =
    camera · num_views + view, camera, or view. Reference quirk: the x11 feature is taken before the *last*
    block (the reference slices 11 of 12 blocks, the same thing for ViT-B/16).
    """

    stage: Optional[str] = None

    def __init__(self, clip_model: nn.Module, num_classes: int, image_size: Tuple[int, int], stride: int = 16,
                 prompt: str = "A photo of a X X X X person.", sie_mode: str = "none", num_cameras: int = 0,
                 num_views: int = 0, sie_coe: float = 3.0, neck_feat: str = "before", id_weight: float = 0.25,
                 triplet_weight: float = 1.0, i2t_weight: float = 1.0, id_loss: Optional[nn.Module] = None,
                 triplet_loss: Optional[nn.Module] = None, supcon_loss: Optional[nn.Module] = None) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ConfigError("CLIP-ReID needs MODEL.HEADS.NUM_CLASSES (the training identities) to build its "
                              "prompt learner and classifiers")
        if neck_feat not in ("before", "after"):
            raise ConfigError(f"MODEL.HEADS.NECK_FEAT must be 'before' or 'after', got '{neck_feat}'")
        self.is_vit = hasattr(clip_model.visual, "class_embedding")
        if self.is_vit:
            self.image_encoder: nn.Module = ClipViT(clip_model.visual, image_size, stride)
        else:
            if sie_mode != "none":
                raise ConfigError("CLIP-ReID applies SIE on the ViT path only (its RN50 never uses cv_embed); "
                                  "turn MODEL.SIE.CAMERA / VIEW off for RN50")
            self.image_encoder = ClipResNet(clip_model.visual, image_size)
        self.num_classes = num_classes
        in_planes, proj_planes = self.image_encoder.out_dim, self.image_encoder.proj_dim
        self.classifier = nn.Linear(in_planes, num_classes, bias=False)
        self.classifier_proj = nn.Linear(proj_planes, num_classes, bias=False)
        self.bottleneck = nn.BatchNorm1d(in_planes)
        self.bottleneck_proj = nn.BatchNorm1d(proj_planes)
        for fc, bn in ((self.classifier, self.bottleneck), (self.classifier_proj, self.bottleneck_proj)):
            nn.init.normal_(fc.weight, std=0.001)
            nn.init.ones_(bn.weight)
            nn.init.zeros_(bn.bias)
            bn.bias.requires_grad_(False)
        if sie_mode not in SIE_MODES:
            raise ConfigError(f"Unknown SIE mode '{sie_mode}'")
        self.sie_mode, self.num_cameras, self.num_views, self.sie_coe = sie_mode, num_cameras, num_views, sie_coe
        rows = {"camera_view": num_cameras * num_views, "camera": num_cameras, "view": num_views}.get(sie_mode, 0)
        if sie_mode != "none":
            if rows <= 0:
                raise ConfigError(f"CLIP-ReID SIE ({sie_mode}) needs MODEL.NUM_CAMERAS / MODEL.NUM_VIEWS")
            self.cv_embed = nn.Parameter(torch.zeros(rows, in_planes))
            trunc_normal_(self.cv_embed, std=0.02)
        context = clip_model.positional_embedding.shape[0]
        self.prompt_learner = PromptLearner(num_classes, prompt, clip_model.token_embedding, context)
        self.text_encoder = ClipTextEncoder(clip_model)
        self.neck_feat = neck_feat
        self.id_weight, self.triplet_weight, self.i2t_weight = id_weight, triplet_weight, i2t_weight
        self.id_loss = id_loss or CrossEntropyLoss(epsilon=0.1)
        self.triplet_loss = triplet_loss or TripletLoss(margin=0.3)
        self.supcon_loss = supcon_loss or SupConLoss(1.0)
        # text features of every identity, computed when the image stage begins (recomputable, so not saved)
        self.register_buffer("text_features", torch.zeros(0), persistent=False)

    @classmethod
    def clip_from_config(cls, cfg) -> nn.Module:
        """open_clip CLIP from MODEL.PRETRAIN_PATH, or random weights of MODEL.CLIP.NAME (+ its dim overrides)."""
        c = cfg.MODEL.CLIP
        dims = clip_dims_from_config(c)
        model = load_clip(cfg.MODEL.PRETRAIN_PATH, dims)
        file_vit = hasattr(model.visual, "class_embedding")
        if file_vit != dims.is_vit:
            raise ConfigError(f"MODEL.PRETRAIN_PATH holds a {'ViT' if file_vit else 'ResNet'} CLIP but "
                              f"MODEL.CLIP.NAME is {c.NAME}")
        return model

    @classmethod
    def config_kwargs(cls, cfg) -> Dict[str, Any]:
        """Constructor arguments shared by CLIP-ReID and MSP."""
        c, sie = cfg.MODEL.CLIP, cfg.MODEL.SIE
        return dict(num_classes=cfg.MODEL.HEADS.NUM_CLASSES, image_size=tuple(cfg.INPUT.SIZE_TRAIN),
                    stride=c.STRIDE_SIZE, prompt=c.PROMPT, sie_mode=clip_sie_mode(sie.CAMERA, sie.VIEW),
                    num_cameras=cfg.MODEL.NUM_CAMERAS, num_views=cfg.MODEL.NUM_VIEWS, sie_coe=sie.COE,
                    neck_feat=cfg.MODEL.HEADS.NECK_FEAT, id_weight=c.ID_LOSS_WEIGHT,
                    triplet_weight=c.TRIPLET_LOSS_WEIGHT, i2t_weight=c.I2T_LOSS_WEIGHT,
                    id_loss=CrossEntropyLoss.from_config(cfg), triplet_loss=TripletLoss.from_config(cfg),
                    supcon_loss=SupConLoss.from_config(cfg))

    @classmethod
    def from_config(cls, cfg) -> "CLIPReID":
        """CLIP from MODEL.PRETRAIN_PATH / MODEL.CLIP.*, heads for MODEL.HEADS.NUM_CLASSES, SIE from MODEL.SIE.*
        with MODEL.NUM_CAMERAS / NUM_VIEWS, grid from INPUT.SIZE_TRAIN and MODEL.CLIP.STRIDE_SIZE."""
        return cls(cls.clip_from_config(cfg), **cls.config_kwargs(cfg))

    @property
    def device(self) -> torch.device:
        return self.classifier.weight.device

    # ------------------------------------------------------------------ stages
    def training_stages(self) -> List[StageSpec]:
        return [StageSpec("prompt", solver="STAGE1", data="custom"), StageSpec("image")]

    def begin_stage(self, name: str, ctx: StageContext) -> Optional[Iterable[Dict[str, Any]]]:
        """Set what the stage trains and prepare it (see the class docstring); "prompt" returns its batches."""
        if name == "prompt":
            freeze_all_but(self, lambda n: n.startswith("prompt_learner."))
            cached = ctx.cached("clip_image_features", lambda: self.image_features_of(ctx, ctx.train_records))
            return ctx.tensor_loader({"features": cached["features"], "targets": cached["targets"]}, ctx.batch_size)
        if name == "image":
            freeze_all_but(self, lambda n: not n.startswith(FROZEN_IN_IMAGE_STAGE))
            self.text_features = self.identity_text_features(batch_size=ctx.batch_size)
            return None
        raise ValueError(f"{type(self).__name__} has no training stage '{name}'")

    @torch.no_grad()
    def image_features_of(self, ctx: StageContext, records) -> Dict[str, torch.Tensor]:
        """Projected CLS features (no SIE, encoder in eval mode) and targets of ``records``, on the CPU."""
        was_training = self.image_encoder.training
        self.image_encoder.eval()
        feats, targets = [], []
        try:
            for batch in ctx.progress(ctx.inference_loader(records), desc="CLIP image features"):
                images = batch["images"].to(self.device, non_blocking=True)
                feats.append(self.projected_feature(images).float().cpu())
                targets.append(batch["targets"].cpu())
        finally:
            self.image_encoder.train(was_training)
        if not feats:
            raise ValueError("The prompt stage has no training images")
        return {"features": torch.cat(feats), "targets": torch.cat(targets).long()}

    @torch.no_grad()
    def identity_text_features(self, labels: Optional[torch.Tensor] = None, template=None,
                               batch_size: int = 64) -> torch.Tensor:
        """K×d text features of identities ``labels`` (default: all) in chunks of ``batch_size``."""
        labels = torch.arange(self.num_classes) if labels is None else labels
        out = [self.encode_text(chunk.to(self.device), template) for chunk in labels.split(max(batch_size, 1))]
        return torch.cat(out).float()

    # ------------------------------------------------------------------ forward
    def encode_text(self, labels: torch.Tensor, template=None) -> torch.Tensor:
        """Text features of identities ``labels`` (prompt learner → text encoder)."""
        tokens = (template or self.prompt_learner).tokens
        return self.text_encoder(self.prompt_learner(labels, template), tokens)

    def sie_embedding(self, camids: Optional[torch.Tensor], views: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """``sie_coe · cv_embed[row]`` per image (None without SIE); rows and errors of :func:`sie_rows`."""
        rows = sie_rows(self.sie_mode, camids, views, self.num_cameras, self.num_views)
        return None if rows is None else self.sie_coe * self.cv_embed[rows]

    def reference_views(self, views: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """View codes as the reference indexes its SIE table (agreid's own codes for CLIP-ReID)."""
        return views

    def projected_feature(self, images: torch.Tensor) -> torch.Tensor:
        """The projected CLS (ViT) / attention-pool (RN50) feature without SIE: the reference's ``get_image``."""
        out = self.image_encoder(images)
        return out.xproj[:, 0] if self.is_vit else out.xproj

    def encode_image(self, images: torch.Tensor, camids: Optional[torch.Tensor] = None,
                     views: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(last, f, f_proj): ViT x11 / x12 / projected CLS; RN50 GAP(layer3) / GAP(layer4) / attention pool."""
        if self.is_vit:
            out = self.image_encoder(images, self.sie_embedding(camids, self.reference_views(views)))
            return out.x11[:, 0], out.x12[:, 0], out.xproj[:, 0]
        out = self.image_encoder(images)
        return out.x3.mean(dim=(2, 3)), out.x4.mean(dim=(2, 3)), out.xproj

    def forward(self, batch: Mapping[str, Any]) -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        """Evaluation: the test feature. Training: the current stage's losses (``self.stage``)."""
        device = self.device
        if self.training and self.stage is not None and self.stage.startswith("prompt"):
            return self.prompt_losses(batch["features"].to(device), batch["targets"].to(device))
        images = batch["images"].to(device, non_blocking=True)
        if images.dim() == 5:
            raise ValueError(f"{type(self).__name__} is an image model; got a B×S×3×H×W video batch")
        last, feat, feat_proj = self.encode_image(images, batch_tensor(batch, "camids", device),
                                                  batch_tensor(batch, "views", device))
        bn, bn_proj = self.bottleneck(feat), self.bottleneck_proj(feat_proj)
        if not self.training:
            return torch.cat([bn, bn_proj] if self.neck_feat == "after" else [feat, feat_proj], dim=1)
        targets = batch["targets"].to(device, non_blocking=True)
        scores = (self.classifier(bn), self.classifier_proj(bn_proj))
        return self.image_losses(scores, (last, feat, feat_proj), targets, batch)

    def prompt_losses(self, image_features: torch.Tensor, targets: torch.Tensor,
                      template=None) -> Dict[str, torch.Tensor]:
        """Stage-1 SupCon losses of cached image features against the prompts of their identities."""
        text = self.encode_text(targets, template)
        return {"loss_i2t": self.supcon_loss(image_features, text, targets, targets),
                "loss_t2i": self.supcon_loss(text, image_features, targets, targets)}

    def image_losses(self, scores, feats, targets: torch.Tensor,
                     batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """Stage-2 losses: weighted ID, triplet and (weight > 0) image→text CE."""
        losses = {"loss_cls": self.id_weight * sum(self.id_loss(s, targets) for s in scores),
                  "loss_triplet": self.triplet_weight * sum(self.triplet_loss(f, targets) for f in feats)}
        if self.i2t_weight:
            if self.text_features.numel() == 0:
                raise RuntimeError("CLIP-ReID's image stage needs the identity text features: begin_stage('image') "
                                   "computes them (or set MODEL.CLIP.I2T_LOSS_WEIGHT 0)")
            logits = feats[2] @ self.text_features.t()
            losses["loss_i2t"] = self.i2t_weight * self.id_loss(logits, targets)
        return losses


@META_ARCH_REGISTRY.register("CLIPReID")
def build_clipreid(cfg) -> nn.Module:
    """Registry builder: :class:`CLIPReID` from the config."""
    return CLIPReID.from_config(cfg)
