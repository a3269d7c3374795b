"""TF-CLIP (Yu et al., AAAI 2024) and the X-TFCLIP extras: CLIP video re-ID with a text-free CLIP-Memory.

Re-implements ``build_transformer`` of ``AsuradaYuci/TF-CLIP`` (``model/make_model_clipreid.py``) and of
``BiDAlab/X-TFCLIP``, with the training losses of their ``processor_clipreid_stage2.py``:

- the CLIP ViT frame encoder (:class:`ClipViT`) runs on the B·T frames of B clips; the SIE row of the clip's
  camera (MODEL.SIE, CLS token only) is added to every frame's CLS, plus (X-TFCLIP, ``VIDEO_EMBED``) the
  learnable embedding of the frame's position t;
- temporal pooling (mean, or X-TFCLIP's attention pooling, ``ATTENTION_POOL``) of CLS(x12) → f (768) and of
  projected CLS → f_proj (512);
- TMD on the detached x12 tokens (:class:`TemporalMemoryDiffusion`): per-frame feature = pooled 130 tokens,
  f_tmd = pooled over frames;
- training only: the CLIP-Memory M (K×512, :class:`ClipMemory`, built before training by the "memory" stage)
  is updated by SSP from the frame-pooled projected tokens, M′ = M + SSP(M, v) (X-TFCLIP ``MEMORY_UPDATE``
  "learned": σ(a)·M + (1−σ(a))·SSP(M, v)), and logits ⟨f_proj, M′_b⟩ are classified;
- four necks (BatchNorm1d with frozen bias, or X-TFCLIP's per-sample standardisation, ``NECK``) and the
  classifiers as the reference wires them: the same ``classifier_tmd`` scores the temporal and the per-frame
  TMD features; ``classifier_tmd_unused`` (the reference's ``classifier_proj_temp2``) is never used but kept
  so counts and checkpoints match.

Losses: ``loss_id`` = W_ID · Σ ID(scores of f, f_proj, f_tmd); ``loss_triplet`` = W_TRI · Σ Tri(f, f_proj,
f_tmd); ``loss_memory`` = W_MEM · ID(memory logits); ``loss_frame`` = W_FRAME · ID(per-frame scores) / T. ID
is label-smoothed CE (MODEL.LOSSES.CE.EPSILON), or online label smoothing (``ID_LOSS`` "ols"; one instance
shared by the three ID terms and the memory term, another for the frame term, as in X-TFCLIP).

Test feature: cat[f, f_proj, f_tmd] (2048-d) with MODEL.HEADS.NECK_FEAT "before"; "after" returns only
cat[neck(f), neck(f_proj)] (1280-d), as the reference does. ``FLIP_TEST`` averages it with that of the
mirrored clip (X-TFCLIP's test script).

Reference behaviour kept: TMD sees detached tokens (no gradient into CLIP from it); one classifier for the two
TMD features; the unused ``classifier_tmd_unused`` / ``ssp.alpha`` / ``ssp.norm`` stay trainable (no gradient);
the memory is built without SIE or frame embedding and is never updated. Differences: the references cannot
run without SIE (agreid can: MODEL.SIE off adds nothing); X-TFCLIP adds its frame embedding only together with
SIE (agreid adds it whenever VIDEO_EMBED is on) and always creates ``cv_embed`` (agreid only with MODEL.SIE);
the memory is computed in float32, not under AMP.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from timm.layers import trunc_normal_
from torch import nn

from agreid.config.config import ConfigError
from agreid.modeling.stages import StageSpec, freeze_all_but
from agreid.registries import META_ARCH_REGISTRY

from ..backbones.clip_loading import clip_dims_from_config, load_clip
from ..backbones.clip_vit import ClipViT
from ..heads.instance_neck import InstanceNeck
from ..layers.attention_pool import build_axis_pooling
from ..layers.clip_memory import ClipMemory, dense_clip_records, memory_file_beside, read_memory_file
from ..layers.sie import sie_rows
from ..layers.ssp import SequenceSpecificPrompt
from ..layers.tmd import TemporalMemoryDiffusion
from ..losses.cross_entropy import CrossEntropyLoss
from ..losses.online_label_smoothing import OnlineLabelSmoothing
from ..losses.triplet import TripletLoss
from .xtfclip import centralize_gradients, flip_averaged

logger = logging.getLogger(__name__)

NECKS = ("bn", "instance")
ID_LOSSES = ("ls", "ols")
MEMORY_UPDATES = ("add", "learned")
SIE_MODES = ("", "camera", "view", "camera_view")
RESIZE_MODES = ("bilinear", "bicubic")


@dataclass(frozen=True)
class TFCLIPOptions:
    """Everything but the encoder and the class count; defaults are TF-CLIP's (MARS ``vit_clipreid.yml``)."""

    num_frames: int = 8
    sie: str = "camera"  # which SIE rows: "", camera, view, camera_view (row = cam · num_views + view)
    sie_rows: int = 0
    num_views: int = 1
    sie_coe: float = 1.0
    video_embed: bool = False
    attention_pool: bool = False
    memory_update: str = "add"
    neck: str = "bn"
    neck_feat: str = "before"
    id_loss: str = "ls"
    epsilon: float = 0.1
    ols_alpha: float = 0.5
    ols_smoothing: float = 0.1
    margin: float = 0.3
    id_weight: float = 0.25
    triplet_weight: float = 1.0
    memory_weight: float = 1.0
    frame_weight: float = 1.0
    ssp_layers: int = 2
    ssp_dropout: float = 0.1
    tmd_layers: int = 1
    tmd_heads: int = 12
    flip_test: bool = False
    grad_centralization: bool = False
    large_fc_lr: float = 10.0

    def validate(self) -> None:
        for value, allowed, key in ((self.neck, NECKS, "NECK"), (self.id_loss, ID_LOSSES, "ID_LOSS"),
                                    (self.memory_update, MEMORY_UPDATES, "MEMORY_UPDATE"),
                                    (self.neck_feat, ("before", "after"), "MODEL.HEADS.NECK_FEAT")):
            if value not in allowed:
                raise ConfigError(f"MODEL.TFCLIP.{key} must be one of {allowed}, got '{value}'"
                                  if "." not in key else f"{key} must be one of {allowed}, got '{value}'")
        if self.sie not in SIE_MODES:
            raise ConfigError(f"TF-CLIP SIE mode must be one of {SIE_MODES}, got '{self.sie}'")
        if self.sie and self.sie_rows < 1:
            raise ConfigError("TF-CLIP with MODEL.SIE.CAMERA / VIEW needs MODEL.NUM_CAMERAS / NUM_VIEWS > 0")
        if self.num_frames < 1:
            raise ConfigError(f"INPUT.SEQ_LEN must be >= 1, got {self.num_frames}")


def _neck(kind: str, dim: int) -> nn.Module:
    if kind == "instance":
        return InstanceNeck(dim)
    bn = nn.BatchNorm1d(dim)
    bn.bias.requires_grad_(False)
    return bn


def _classifier(dim: int, num_classes: int) -> nn.Linear:
    fc = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(fc.weight, std=0.001)
    return fc


class TFCLIP(nn.Module):
    """TF-CLIP / X-TFCLIP video re-ID model (see the module docstring); staged: "memory" then "train"."""

    takes_clips = True  # tracklet evaluation hands it whole B×T clips (agreid.data.video.takes_frames)
    ddp_find_unused_parameters = True  # classifier_tmd_unused, ssp.alpha, ssp.norm never get a gradient

    def __init__(self, image_encoder: ClipViT, num_classes: int, options: TFCLIPOptions = TFCLIPOptions()) -> None:
        super().__init__()
        options.validate()
        if num_classes < 1:
            raise ConfigError("TF-CLIP needs MODEL.HEADS.NUM_CLASSES (the training identities) for its "
                              "classifiers and CLIP-Memory")
        self.opts = o = options
        self.num_classes = num_classes
        self.num_frames = o.num_frames
        self.image_encoder = image_encoder
        dim, proj = image_encoder.out_dim, image_encoder.proj_dim
        if o.sie:
            self.sie_embed = nn.Parameter(torch.zeros(o.sie_rows, dim))
            trunc_normal_(self.sie_embed, std=0.02)
        if o.video_embed:
            self.video_embed = nn.Parameter(torch.zeros(o.num_frames, dim))
        self.ssp = SequenceSpecificPrompt(proj, layers=o.ssp_layers, dropout=o.ssp_dropout)
        if o.memory_update == "learned":
            self.memory_alpha = nn.Parameter(torch.tensor(0.5))
        self.tmd = TemporalMemoryDiffusion(dim, o.tmd_layers, o.tmd_heads, o.num_frames)
        self.pool_cls = build_axis_pooling(o.attention_pool, dim)
        self.pool_proj = build_axis_pooling(o.attention_pool, proj)
        self.pool_frame_tokens = build_axis_pooling(o.attention_pool, dim)
        self.pool_tmd = build_axis_pooling(o.attention_pool, dim)
        self.pool_memory_tokens = build_axis_pooling(o.attention_pool, proj)
        self.neck_cls, self.neck_proj = _neck(o.neck, dim), _neck(o.neck, proj)
        self.neck_frame, self.neck_tmd = _neck(o.neck, dim), _neck(o.neck, dim)
        self.classifier_cls = _classifier(dim, num_classes)
        self.classifier_proj = _classifier(proj, num_classes)
        self.classifier_tmd = _classifier(dim, num_classes)
        self.classifier_tmd_unused = _classifier(dim, num_classes)
        self.clip_memory = ClipMemory(num_classes, proj)
        if o.id_loss == "ols":
            self.id_loss: nn.Module = OnlineLabelSmoothing(num_classes, o.ols_alpha, o.ols_smoothing)
            self.frame_loss: nn.Module = OnlineLabelSmoothing(num_classes, o.ols_alpha, o.ols_smoothing)
        else:
            self.id_loss = self.frame_loss = CrossEntropyLoss(o.epsilon)
        self.triplet_loss = TripletLoss(margin=o.margin)
        self.stage = "train"
        self.memory_from_file = False
        if o.grad_centralization:
            centralize_gradients(self)

    # ------------------------------------------------------------------ features
    @property
    def device(self) -> torch.device:
        return self.image_encoder.conv1.weight.device

    def cls_embedding(self, camids: Optional[torch.Tensor], views: Optional[torch.Tensor],
                      batch: int) -> Optional[torch.Tensor]:
        """The (B·T)×D vector added to each frame's CLS: SIE row of the clip (repeated) + frame embedding."""
        o = self.opts
        out = None
        if o.sie:
            cams = o.sie_rows // o.num_views if o.sie == "camera_view" else o.sie_rows
            index = sie_rows(o.sie, camids, views, cams, o.sie_rows if o.sie == "view" else o.num_views)
            out = (o.sie_coe * self.sie_embed[index]).repeat_interleave(self.num_frames, dim=0)
        if o.video_embed:
            frames = self.video_embed.repeat(batch, 1)
            out = frames if out is None else out + frames
        return out

    def encode(self, clips: torch.Tensor, camids: Optional[torch.Tensor] = None,
               views: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Features of B×T×3×H×W ``clips``: f, f_proj, per-frame TMD feature, f_tmd, and the projected tokens."""
        b, t = clips.shape[:2]
        if t != self.num_frames:
            raise ValueError(f"TF-CLIP was built for {self.num_frames}-frame clips (INPUT.SEQ_LEN), got {t}")
        out = self.image_encoder(clips.flatten(0, 1), self.cls_embedding(camids, views, b))
        tokens, proj_tokens = out.x12, out.xproj
        f = self.pool_cls(tokens[:, 0].reshape(b, t, -1))
        f_proj = self.pool_proj(proj_tokens[:, 0].reshape(b, t, -1))
        f_frame = self.pool_frame_tokens(self.tmd(tokens.detach()))
        f_tmd = self.pool_tmd(f_frame.reshape(b, t, -1))
        return {"f": f, "f_proj": f_proj, "f_frame": f_frame, "f_tmd": f_tmd,
                "proj_tokens": proj_tokens.reshape(b, t, *proj_tokens.shape[1:])}

    def test_feature(self, clips: torch.Tensor, camids: Optional[torch.Tensor],
                     views: Optional[torch.Tensor]) -> torch.Tensor:
        feats = self.encode(clips, camids, views)
        if self.opts.neck_feat == "after":
            return torch.cat([self.neck_cls(feats["f"]), self.neck_proj(feats["f_proj"])], dim=1)
        return torch.cat([feats["f"], feats["f_proj"], feats["f_tmd"]], dim=1)

    @torch.no_grad()
    def memory_clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Frame mean of the projected CLS without SIE or frame embedding: the reference's ``get_image`` path."""
        b, t = clips.shape[:2]
        return self.image_encoder(clips.flatten(0, 1)).xproj[:, 0].reshape(b, t, -1).mean(dim=1)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Mapping[str, Any]) -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        """Losses (training) or test features (evaluation) of a clip batch (``images`` B×T×3×H×W, ``targets``,
        ``camids``, ``views``)."""
        device = self.device
        images = batch["images"].to(device, non_blocking=True)
        side = {k: batch[k].to(device) if isinstance(batch.get(k), torch.Tensor) else None for k in ("camids", "views")}
        if images.dim() != 5:
            raise ValueError(f"TF-CLIP takes B×T×3×H×W clips, got shape {tuple(images.shape)}")
        if not self.training:
            return (flip_averaged(self.test_feature, images, side["camids"], side["views"]) if self.opts.flip_test
                    else self.test_feature(images, side["camids"], side["views"]))
        if self.stage != "train":
            raise RuntimeError(f"TF-CLIP has no training step in stage '{self.stage}' (its 'memory' stage only "
                               f"prepares the CLIP-Memory)")
        targets = batch["targets"].to(device, non_blocking=True)
        return self.losses(self.encode(images, side["camids"], side["views"]), targets)

    def memory_logits(self, f_proj: torch.Tensor, proj_tokens: torch.Tensor) -> torch.Tensor:
        """⟨f_proj, M′_b⟩ with M′ = M + SSP(M, v) (or the learned mix); v = frame-pooled projected tokens."""
        if not self.clip_memory.is_ready:
            raise RuntimeError("TF-CLIP's CLIP-Memory is not built: train through the staged trainer (its "
                               "'memory' stage builds it) or give MODEL.TFCLIP.MEMORY_FILE")
        b = f_proj.shape[0]
        memory = self.clip_memory.bank.unsqueeze(0).expand(b, -1, -1)
        prompt = self.ssp(memory, self.pool_memory_tokens(proj_tokens))
        if self.opts.memory_update == "learned":
            alpha = torch.sigmoid(self.memory_alpha)
            updated = alpha * memory + (1 - alpha) * prompt
        else:
            updated = memory + prompt
        return torch.einsum("bd,bkd->bk", f_proj, updated)

    def losses(self, feats: Mapping[str, torch.Tensor], targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The four loss terms of the module docstring."""
        o = self.opts
        scores = [self.classifier_cls(self.neck_cls(feats["f"])),
                  self.classifier_proj(self.neck_proj(feats["f_proj"])),
                  self.classifier_tmd(self.neck_tmd(feats["f_tmd"]))]
        frame_scores = self.classifier_tmd(self.neck_frame(feats["f_frame"]))
        logits = self.memory_logits(feats["f_proj"], feats["proj_tokens"])
        loss_id = sum(self.id_loss(s, targets) for s in scores)
        loss_tri = sum(self.triplet_loss(feats[k], targets) for k in ("f", "f_proj", "f_tmd"))
        loss_memory = self.id_loss(logits, targets)
        frame_targets = targets.repeat_interleave(self.num_frames)
        loss_frame = self.frame_loss(frame_scores, frame_targets) / self.num_frames
        return {"loss_id": o.id_weight * loss_id, "loss_triplet": o.triplet_weight * loss_tri,
                "loss_memory": o.memory_weight * loss_memory, "loss_frame": o.frame_weight * loss_frame}

    # ------------------------------------------------------------------ engine hooks
    def training_stages(self) -> List[StageSpec]:
        return [StageSpec("memory", epochs=0), StageSpec("train")]

    def begin_stage(self, name: str, ctx) -> None:
        """"memory": build the CLIP-Memory (once per run: cached under OUTPUT_DIR) unless it came from
        MODEL.TFCLIP.MEMORY_FILE; "train": every parameter trains except the frozen BatchNorm biases."""
        self.stage = name
        if name == "memory":
            if self.memory_from_file:
                logger.info("TF-CLIP: CLIP-Memory taken from MODEL.TFCLIP.MEMORY_FILE; not rebuilt")
                return None
            self.clip_memory.set(ctx.cached("tfclip_clip_memory", lambda: {"bank": self.build_memory(ctx)})["bank"])
            return None
        if name != "train":
            raise ValueError(f"TF-CLIP has no stage '{name}'")
        if not self.clip_memory.is_ready:
            raise RuntimeError("TF-CLIP: stage 'train' started without a CLIP-Memory (run the 'memory' stage first)")
        frozen = {n for n, m in self.named_modules() if isinstance(m, nn.BatchNorm1d)}
        freeze_all_but(self, lambda p: not (p.endswith(".bias") and p.rsplit(".", 1)[0] in frozen))
        return None

    def build_memory(self, ctx) -> torch.Tensor:
        """The K×d CLIP-Memory from dense clips of every training tracklet (test transforms, no augmentation)."""
        records = list(ctx.train_records)
        clips, owners = dense_clip_records(records, self.num_frames)
        labels = torch.tensor([int(r.pid) for r in records], dtype=torch.long)
        logger.info(f"TF-CLIP: building the CLIP-Memory from {len(clips)} clips of {len(records)} tracklets")
        was_training = self.training
        self.eval()
        try:
            loader = ctx.progress(ctx.inference_loader(clips), desc="CLIP-Memory")
            return self.clip_memory.compute(
                lambda b: self.memory_clip_features(b["images"].to(self.device, non_blocking=True)),
                loader, owners, labels)
        finally:
            self.train(was_training)

    def param_lr_factors(self) -> Dict[str, float]:
        """LR multipliers by parameter name: the reference's LARGE_FC_LR (×10 on ``classifier_proj_temp*``)."""
        if self.opts.large_fc_lr == 1.0:
            return {}
        return {n: self.opts.large_fc_lr for n, _ in self.named_parameters() if n.startswith("classifier_tmd")}

    @classmethod
    def from_config(cls, cfg) -> "TFCLIP":
        """Encoder from MODEL.PRETRAIN_PATH / MODEL.CLIP (:func:`build_frame_encoder`), the rest from MODEL.TFCLIP,
        MODEL.SIE, MODEL.HEADS, MODEL.LOSSES and INPUT; the CLIP-Memory from MODEL.TFCLIP.MEMORY_FILE, else from
        ``clip_memory.pt`` beside MODEL.WEIGHTS when that exists (a reference checkpoint does not hold it)."""
        t, sie = cfg.MODEL.TFCLIP, cfg.MODEL.SIE
        mode = "camera_view" if sie.CAMERA and sie.VIEW else "camera" if sie.CAMERA else "view" if sie.VIEW else ""
        rows = {"": 0, "camera": cfg.MODEL.NUM_CAMERAS, "view": cfg.MODEL.NUM_VIEWS,
                "camera_view": cfg.MODEL.NUM_CAMERAS * cfg.MODEL.NUM_VIEWS}[mode]
        opts = TFCLIPOptions(
            num_frames=cfg.INPUT.SEQ_LEN, sie=mode, sie_rows=rows, num_views=max(cfg.MODEL.NUM_VIEWS, 1),
            sie_coe=sie.COE, video_embed=t.VIDEO_EMBED, attention_pool=t.ATTENTION_POOL,
            memory_update=t.MEMORY_UPDATE, neck=t.NECK, neck_feat=cfg.MODEL.HEADS.NECK_FEAT, id_loss=t.ID_LOSS,
            epsilon=cfg.MODEL.LOSSES.CE.EPSILON, ols_alpha=t.OLS_ALPHA, ols_smoothing=t.OLS_SMOOTHING,
            margin=cfg.MODEL.LOSSES.TRI.MARGIN, id_weight=t.ID_LOSS_WEIGHT, triplet_weight=t.TRI_LOSS_WEIGHT,
            memory_weight=t.MEMORY_LOSS_WEIGHT, frame_weight=t.FRAME_LOSS_WEIGHT, ssp_layers=t.SSP_LAYERS,
            ssp_dropout=t.SSP_DROPOUT, tmd_layers=t.TMD_LAYERS, tmd_heads=t.TMD_HEADS, flip_test=t.FLIP_TEST,
            grad_centralization=t.GRAD_CENTRALIZATION, large_fc_lr=t.LARGE_FC_LR)
        model = cls(build_frame_encoder(cfg), cfg.MODEL.HEADS.NUM_CLASSES, opts)
        memory_file = t.MEMORY_FILE or memory_file_beside(cfg.MODEL.WEIGHTS)
        if memory_file:
            model.clip_memory.set(read_memory_file(memory_file))
            model.memory_from_file = True
            logger.info(f"TF-CLIP: CLIP-Memory read from {memory_file}")
        return model


def build_frame_encoder(cfg) -> ClipViT:
    """The CLIP ViT of MODEL.PRETRAIN_PATH (random weights of MODEL.CLIP.NAME and its dim overrides when empty) at
    INPUT.SIZE_TRAIN with patch stride MODEL.CLIP.STRIDE_SIZE, its grid resized with MODEL.TFCLIP.POS_RESIZE."""
    c, t = cfg.MODEL.CLIP, cfg.MODEL.TFCLIP
    if t.POS_RESIZE not in RESIZE_MODES:
        raise ConfigError(f"MODEL.TFCLIP.POS_RESIZE must be one of {RESIZE_MODES}, got '{t.POS_RESIZE}'")
    dims = clip_dims_from_config(c)
    if not dims.is_vit:
        raise ConfigError(f"TF-CLIP needs a CLIP ViT (MODEL.CLIP.NAME ViT-B-16), got '{c.NAME}'")
    clip = load_clip(cfg.MODEL.PRETRAIN_PATH, dims)
    if not hasattr(clip.visual, "class_embedding"):
        raise ConfigError("MODEL.PRETRAIN_PATH holds a ResNet CLIP; TF-CLIP needs a ViT (e.g. ViT-B-16.pt)")
    return ClipViT(clip.visual, cfg.INPUT.SIZE_TRAIN, stride=c.STRIDE_SIZE, resize_mode=t.POS_RESIZE)


@META_ARCH_REGISTRY.register("TFCLIP")
def build_tfclip(cfg) -> nn.Module:
    """Registry builder: :meth:`TFCLIP.from_config`."""
    return TFCLIP.from_config(cfg)
