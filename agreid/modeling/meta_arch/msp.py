"""MSP, the method released with the MSSL dataset (``sysuchx/SkyGroundReID``): CLIP-ReID with view-specific
prompts learned per view and two cross-view text losses in stage 2.

The reference is CLIP-ReID with a hand edit: stage 1 is run separately on the sky and on the ground training
images with the templates "A sky photo of a X X X X person." / "A ground photo of a X X X X person." (6 fixed
prefix tokens, 4 learnable), each run's identity text features are stored, and a joint run trains the image
encoder with CLIP-ReID's losses (I2T weight 0) plus ``loss_air`` = CE(f_proj @ ground-textsᵀ) and
``loss_ground`` = CE(f_proj @ sky-textsᵀ) over ground images (``loss/make_loss.py``,
``processor/processor_clipreid_stage2.py``); SIE camera×view (row = camera · 2 + view, view 0 ground, 1 sky).

agreid runs this as three stages of one model: "prompt_sky" and "prompt_ground" train the one prompt learner
(re-initialised between them) with the per-view template on that view's images; when a view's stage is over its
text features of every identity are kept in the ``text_bank_sky`` / ``text_bank_ground`` buffers (saved, so a
resumed run keeps them); "image" is CLIP-ReID's stage 2 plus the two view losses. The checkpoint layout and
parameter count are the reference's (the banks are buffers).

Reference defects, kept by default with a switch for the corrected behaviour:
- MODEL.MSP.MASK_AIR_LOSS: the reference builds a sky-only mask for ``loss_air`` but applies the loss to every
  image; True applies it to aerial images only.
- MODEL.MSP.ALIGN_BY_PID: each per-view reference run relabels its own identities, so bank row i is the i-th
  identity *of that view* while the joint run reads it as joint identity i; this only lines up when every
  identity has images of both views, and the reference cannot run otherwise (its bank is narrower than its
  labels). By default agreid does the same and refuses a view that lacks identities; True indexes the per-view
  prompts by the joint identity (the same raw pid), leaving an absent identity's row at its untrained prompt.
A batch without ground (or, masked, aerial) images gives a zero view loss (the reference: NaN, skipped by AMP).
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from agreid.config.config import ConfigError
from agreid.data.records import AERIAL, GROUND, view_index
from agreid.registries import META_ARCH_REGISTRY

from ..backbones.clip_text import PromptTemplate
from ..stages import StageContext, StageSpec, freeze_all_but
from .clipreid import FROZEN_IN_IMAGE_STAGE, CLIPReID

VIEW_STAGES = {"prompt_sky": ("sky", 0), "prompt_ground": ("ground", 1)}


def is_aerial_record(record: Any) -> bool:
    """Training records of the sky stage (agreid view "aerial")."""
    return record.view == AERIAL


def is_ground_record(record: Any) -> bool:
    """Training records of the ground stage."""
    return record.view == GROUND


class MSP(CLIPReID):
    """CLIP-ReID + per-view prompt stages and cross-view text losses (see the module docstring)."""

    def __init__(self, clip_model: nn.Module, sky_prompt: str = "A sky photo of a X X X X person.",
                 ground_prompt: str = "A ground photo of a X X X X person.", air_weight: float = 1.0,
                 ground_weight: float = 0.1, mask_air_loss: bool = False, align_by_pid: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(clip_model, **kwargs)
        if not self.is_vit:
            raise ConfigError("MSP is defined on the CLIP ViT (MODEL.CLIP.NAME ViT-B-16)")
        context = clip_model.positional_embedding.shape[0]
        # rebuilt from the CLIP token embedding at construction, like the reference's per-view runs: not saved
        self.sky_template = PromptTemplate(sky_prompt, clip_model.token_embedding, context, persistent=False)
        self.ground_template = PromptTemplate(ground_prompt, clip_model.token_embedding, context, persistent=False)
        d = self.text_encoder.out_dim
        self.register_buffer("text_bank_sky", torch.zeros(self.num_classes, d))
        self.register_buffer("text_bank_ground", torch.zeros(self.num_classes, d))
        self.register_buffer("view_banks_ready", torch.zeros(2, dtype=torch.long))  # sky, ground
        self.air_weight, self.ground_weight = air_weight, ground_weight
        self.mask_air_loss, self.align_by_pid = mask_air_loss, align_by_pid

    @classmethod
    def from_config(cls, cfg) -> "MSP":
        """CLIP-ReID's config plus MODEL.MSP.*."""
        m = cfg.MODEL.MSP
        return cls(cls.clip_from_config(cfg), sky_prompt=m.SKY_PROMPT, ground_prompt=m.GROUND_PROMPT,
                   air_weight=m.AIR_LOSS_WEIGHT, ground_weight=m.GROUND_LOSS_WEIGHT, mask_air_loss=m.MASK_AIR_LOSS,
                   align_by_pid=m.ALIGN_BY_PID, **cls.config_kwargs(cfg))

    def reference_views(self, views: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """agreid's view codes (aerial 0, ground 1) as MSP's (ground 0, sky 1), which index its SIE table."""
        return None if views is None else (views == view_index(AERIAL)).long()

    def template(self, view: str) -> PromptTemplate:
        return self.sky_template if view == "sky" else self.ground_template

    # ------------------------------------------------------------------ stages
    def training_stages(self) -> List[StageSpec]:
        return [StageSpec("prompt_sky", solver="STAGE1", data="custom", records=is_aerial_record),
                StageSpec("prompt_ground", solver="STAGE1", data="custom", records=is_ground_record),
                StageSpec("image")]

    def begin_stage(self, name: str, ctx: StageContext) -> Optional[Iterable[Dict[str, Any]]]:
        """Per-view prompt stages (keeping the previous view's bank first), then the image stage."""
        if name == "prompt_ground":
            self.finish_view("sky", ctx.batch_size)
        if name in VIEW_STAGES:
            view = VIEW_STAGES[name][0]
            freeze_all_but(self, lambda n: n.startswith("prompt_learner."))
            cached = ctx.cached(f"clip_image_features_{view}", lambda: self.image_features_of(ctx, ctx.train_records))
            labels = self.view_labels(cached["targets"], view)
            return ctx.tensor_loader({"features": cached["features"], "targets": labels}, ctx.batch_size)
        if name == "image":
            self.finish_view("ground", ctx.batch_size)
            if not bool(self.view_banks_ready.all()):
                raise RuntimeError("MSP's image stage needs both per-view text banks (stages prompt_sky and "
                                   "prompt_ground, or weights that hold them)")
            return super().begin_stage(name, ctx) if self.i2t_weight else self._image_stage_without_i2t()
        raise ValueError(f"MSP has no training stage '{name}'")

    def _image_stage_without_i2t(self) -> None:
        """With I2T weight 0 (the MSP recipe) the joint text features are never used: only freeze."""
        freeze_all_but(self, lambda n: not n.startswith(FROZEN_IN_IMAGE_STAGE))
        return None

    def view_labels(self, targets: torch.Tensor, view: str) -> torch.Tensor:
        """Prompt index of each image of one view: its joint identity (ALIGN_BY_PID), or, as the reference's
        per-view relabelling, its rank among the view's identities (the same when every identity has the view)."""
        if self.align_by_pid:
            return targets
        present = torch.unique(targets)
        if len(present) != self.num_classes:
            raise ConfigError(f"MSP: the {view} training images cover {len(present)} of the {self.num_classes} "
                              f"identities; the reference's per-view relabelling then misaligns the {view} prompts "
                              f"with the joint identities (its stage 2 fails). Set MODEL.MSP.ALIGN_BY_PID True")
        return torch.searchsorted(present, targets)

    @torch.no_grad()
    def finish_view(self, view: str, batch_size: int) -> None:
        """Keep ``view``'s text features of every identity, then re-draw the prompts for the next stage; done once
        (a resumed run finds the bank and the flag in its checkpoint)."""
        slot = 0 if view == "sky" else 1
        if bool(self.view_banks_ready[slot]):
            return
        bank = self.identity_text_features(template=self.template(view), batch_size=batch_size)
        getattr(self, f"text_bank_{view}").copy_(bank)
        self.view_banks_ready[slot] = 1
        self.prompt_learner.reset_context()

    # ------------------------------------------------------------------ losses
    def forward(self, batch: Mapping[str, Any]):
        if self.training and self.stage in VIEW_STAGES:
            view = VIEW_STAGES[self.stage][0]
            return self.prompt_losses(batch["features"].to(self.device), batch["targets"].to(self.device),
                                      self.template(view))
        return super().forward(batch)

    def image_losses(self, scores, feats, targets: torch.Tensor,
                     batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """CLIP-ReID's stage-2 losses plus ``loss_air`` and ``loss_ground`` (see the module docstring)."""
        losses = super().image_losses(scores, feats, targets, batch)
        views = batch.get("views")
        if views is None:
            raise ValueError("MSP's image stage needs each image's view code in the batch")
        sky = self.reference_views(views.to(self.device)) == 1
        proj = feats[2]
        air_mask = sky if self.mask_air_loss else None
        losses["loss_air"] = self.air_weight * self.masked_ce(proj @ self.text_bank_ground.t(), targets, air_mask)
        losses["loss_ground"] = self.ground_weight * self.masked_ce(proj @ self.text_bank_sky.t(), targets, ~sky)
        return losses

    def masked_ce(self, logits: torch.Tensor, targets: torch.Tensor,
                  mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Label-smoothed CE averaged over the images of ``mask`` (all when None; 0 when none is selected)."""
        if mask is None:
            return self.id_loss(logits, targets)
        per_image = F.cross_entropy(logits, targets, reduction="none", label_smoothing=self.id_loss.epsilon)
        weight = mask.to(per_image.dtype)
        return (per_image * weight).sum() / weight.sum().clamp(min=1.0) * self.id_loss.scale


@META_ARCH_REGISTRY.register("MSP")
def build_msp(cfg) -> nn.Module:
    """Registry builder: :class:`MSP` from the config."""
    return MSP.from_config(cfg)
