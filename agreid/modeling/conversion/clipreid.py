"""CLIP-ReID and MSP checkpoints (``Syliz517/CLIP-ReID``, ``sysuchx/SkyGroundReID``): bare ``model.state_dict()``
files (``ViT-B-16_60.pth``, ``RN50_120.pth``; ``module.``-prefixed when trained with DataParallel).

agreid's :class:`~agreid.modeling.meta_arch.clipreid.CLIPReID` keeps the reference's key names
(``image_encoder.*``, ``text_encoder.*``, ``prompt_learner.{cls_ctx,token_prefix,token_suffix}``,
``classifier[_proj].weight``, ``bottleneck[_proj].*``, ``cv_embed``), so a matching file loads without
renaming. This converter handles what differs:

- MSP's per-view text banks (``text_bank_sky`` / ``text_bank_ground`` and ``view_banks_ready``) live in files
  outside the reference checkpoint (its code leaves their file paths unset): they keep the model's values, with a note
  (they only feed the training losses);
- a ``cv_embed`` (SIE) table in the file for a model built without SIE is listed as dead (the reference builds
  it for RN50 too, where it never runs).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from agreid.registries import CHECKPOINT_FORMAT_REGISTRY

from ..meta_arch.clipreid import CLIPReID
from . import ConvertedState

FORMAT = "CLIP-ReID"
MODEL_ONLY_KEYS = ("text_bank_sky", "text_bank_ground", "view_banks_ready")


def is_clipreid_state(keys: List[str]) -> bool:
    """True for the key layout of a CLIP-ReID ``build_transformer`` state dict (MSP's is the same)."""
    return ("prompt_learner.cls_ctx" in keys and any(k.startswith("image_encoder.") for k in keys)
            and any(k.startswith("text_encoder.") for k in keys))


@CHECKPOINT_FORMAT_REGISTRY.register(FORMAT)
def convert_clipreid(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[ConvertedState]:
    """Complete a CLIP-ReID / MSP state dict for a :class:`CLIPReID` (or MSP) model; None for other files,
    other models, or a file that already fits exactly."""
    target = getattr(model, "module", model)
    if not isinstance(target, CLIPReID):
        return None
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    if not is_clipreid_state(list(state)):
        return None
    own = target.state_dict()
    if set(own) == set(state):
        return None
    out: Dict[str, torch.Tensor] = {}
    dead: List[str] = []
    notes: List[str] = []
    for key, value in state.items():
        if key == "cv_embed" and key not in own:
            dead.append(key)
            notes.append("the file has an SIE table (cv_embed) but the model has no SIE (MODEL.SIE.CAMERA / "
                         "VIEW off, or RN50, where the reference never uses it); not loaded")
        else:
            out[key] = value
    filled = [k for k in MODEL_ONLY_KEYS if k in own and k not in out]
    for key in filled:
        out[key] = own[key]
    if filled:
        notes.append(f"{', '.join(filled)} are not part of reference checkpoints (MSP keeps its per-view text "
                     f"banks in separate files); kept at the model's values, which only the training losses use")
    return ConvertedState(format=FORMAT, state_dict=out, dead=dead, notes=notes)
