"""TF-CLIP / X-TFCLIP checkpoints (``AsuradaYuci/TF-CLIP``, ``BiDAlab/X-TFCLIP``): bare ``model.state_dict()`` files.

The training loops save ``model.state_dict()`` (``checkpoint_ep.pth.tar`` / ``best_model.pth.tar``;
``module.``-prefixed under DDP). Key families and their agreid names (:class:`~..meta_arch.tfclip.TFCLIP`):

- ``image_encoder.*`` (CLIP visual: conv1, class/positional embedding, ln_pre, transformer, ln_post, proj) → same;
- ``cv_embed`` → ``sie_embed``; ``SSP.*`` → ``ssp.*``; ``TMD.*`` → ``tmd.*``;
- ``bottleneck`` / ``bottleneck_proj`` / ``bottleneck_proj_temp`` / ``bottleneck_proj_temp2`` → ``neck_cls`` /
  ``neck_proj`` / ``neck_frame`` / ``neck_tmd`` (X-TFCLIP's InstanceNorm necks have no keys);
- ``classifier2`` / ``classifier_proj`` / ``classifier_proj_temp`` / ``classifier_proj_temp2`` →
  ``classifier_cls`` / ``classifier_proj`` / ``classifier_tmd`` / ``classifier_tmd_unused``;
- X-TFCLIP: ``video_embed`` and ``memory_alpha`` → same; ``tap_img_feature`` / ``tap_img_feature_proj`` /
  ``tap_cls_f_sp`` / ``tap_cls_f_tp`` / ``tap_video`` → ``pool_cls`` / ``pool_proj`` / ``pool_frame_tokens`` /
  ``pool_tmd`` / ``pool_memory_tokens``.

Not in the reference files: the CLIP-Memory (rebuilt by the reference at every start) and the online label
smoothing statistics. They are taken from the model as built: its CLIP-Memory comes from
MODEL.TFCLIP.MEMORY_FILE, or from ``clip_memory.pt`` beside MODEL.WEIGHTS, or is left unbuilt (evaluation does
not need it; training builds it in the "memory" stage).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from agreid.registries import CHECKPOINT_FORMAT_REGISTRY
from agreid.utils.errors import CheckpointError

from ..meta_arch.tfclip import TFCLIP
from . import ConvertedState

FORMAT = "TF-CLIP"
RENAMES = (  # longest prefixes first
    ("bottleneck_proj_temp2.", "neck_tmd."), ("bottleneck_proj_temp.", "neck_frame."),
    ("bottleneck_proj.", "neck_proj."), ("bottleneck.", "neck_cls."),
    ("classifier_proj_temp2.", "classifier_tmd_unused."), ("classifier_proj_temp.", "classifier_tmd."),
    ("classifier_proj.", "classifier_proj."), ("classifier2.", "classifier_cls."),
    ("tap_img_feature_proj.", "pool_proj."), ("tap_img_feature.", "pool_cls."),
    ("tap_cls_f_sp.", "pool_frame_tokens."), ("tap_cls_f_tp.", "pool_tmd."), ("tap_video.", "pool_memory_tokens."),
    ("SSP.", "ssp."), ("TMD.", "tmd."), ("image_encoder.", "image_encoder."),
)
ROOT_RENAMES = {"cv_embed": "sie_embed", "video_embed": "video_embed", "memory_alpha": "memory_alpha"}
# parts of the model that a reference file never holds: taken from the model as built
MODEL_ONLY_PREFIXES = ("clip_memory.", "id_loss.", "frame_loss.")


def is_tfclip_state(keys: List[str]) -> bool:
    """True for the key layout of a TF-CLIP / X-TFCLIP ``build_transformer`` state dict."""
    return "classifier_proj_temp.weight" in keys and any(k.startswith("TMD.resblocks.") for k in keys)


def rename_key(key: str) -> str:
    """agreid name of a (``module.``-stripped) TF-CLIP key; unknown keys are returned unchanged."""
    if key in ROOT_RENAMES:
        return ROOT_RENAMES[key]
    for old, new in RENAMES:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _check_variant(state: Mapping[str, torch.Tensor], model: TFCLIP) -> None:
    """Refuse a file of the other variant with the config switch that fits it (else it half-loads)."""
    o = model.opts
    checks = (("video_embed" in state, o.video_embed, "MODEL.TFCLIP.VIDEO_EMBED"),
              (any(k.startswith("tap_") for k in state), o.attention_pool, "MODEL.TFCLIP.ATTENTION_POOL"),
              ("memory_alpha" in state, o.memory_update == "learned", "MODEL.TFCLIP.MEMORY_UPDATE learned"),
              ("bottleneck.running_mean" not in state, o.neck == "instance", "MODEL.TFCLIP.NECK instance"))
    wrong = [f"{key} {'on' if in_file else 'off'}" for in_file, in_model, key in checks if in_file != in_model]
    if wrong:
        kind = "an X-TFCLIP" if "video_embed" in state else "a TF-CLIP"
        raise CheckpointError(f"This is {kind} checkpoint; the config does not match it: set {', '.join(wrong)} "
                              f"(configs/AGVPReID/xtfclip.yml / tfclip.yml hold both variants)")


@CHECKPOINT_FORMAT_REGISTRY.register(FORMAT)
def convert_tfclip(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[ConvertedState]:
    """Rename a TF-CLIP / X-TFCLIP state dict for a :class:`TFCLIP` model; None for other files or models."""
    target = getattr(model, "module", model)
    if not isinstance(target, TFCLIP):
        return None
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    if not is_tfclip_state(list(state)):
        return None
    _check_variant(state, target)
    out: Dict[str, torch.Tensor] = {rename_key(k): v for k, v in state.items()}
    own = target.state_dict()
    kept = [k for k in own if k.startswith(MODEL_ONLY_PREFIXES) and k not in out]
    out.update({k: own[k] for k in kept})
    notes = ["the online label smoothing state is not in reference files; it starts fresh"] if any(
        k.startswith(("id_loss.", "frame_loss.")) for k in kept) else []
    if "clip_memory.bank" in kept:
        notes.append("CLIP-Memory: " + ("taken from the memory file given with the model" if
                                        target.clip_memory.is_ready else
                                        "not in the reference file and no memory file given; evaluation does not "
                                        "need it, training builds it in its 'memory' stage"))
    if "cv_embed" in state and not hasattr(target, "sie_embed"):
        notes.append("the file has SIE embeddings (cv_embed) but the model has none (set MODEL.SIE.CAMERA and "
                     "MODEL.NUM_CAMERAS)")
    return ConvertedState(format=FORMAT, state_dict=out, notes=notes)


__all__ = ["convert_tfclip", "is_tfclip_state", "rename_key"]
