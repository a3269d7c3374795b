"""Checkpoints of SeCap and VDT saved by their reference code (wangshining681/SeCap-AGPReID, a fast-reid fork).

fast-reid saves ``{"model": state_dict, "optimizer": ..., ...}``; the loader hands over the state dict.
Renames (reference → agreid):

- SeCap ``backbone.base.{cls_token, view_token, pos_embed, patch_embed.*, blocks.0..10.*}`` →
  ``backbone.*``; ``backbone.b1.0.*`` (the copy of the last block) → ``backbone.blocks.<last>.*`` and
  ``backbone.b1.1.*`` → ``backbone.norm.*``; ``backbone.{prompt, image_pe, out_token, prm.*, lfrm.*}`` →
  ``{prompt, image_pe, out_token, prm.*, lfrm.*}``. VDT's ``backbone.*`` keys keep their names.
- Heads: ``<head>.weight`` (a bare Parameter used with F.linear) → ``<head>.classifier.weight`` and
  ``<head>.bottleneck.0.*`` (a BatchNorm2d on 1×1 maps) → ``<head>.bottleneck.*``; same values.

Dead reference keys, never used by the reference's forward and not instantiated here, are listed in
``dead``: ``backbone.base.blocks.<last>.*``, ``backbone.base.norm.*``, ``backbone.prm.attn2.*`` and
``backbone.lfrm.out_token``. The view classifier needs no row swap: agreid maps its view codes to the
reference's labels (aerial 1, other 0) at input.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional

import torch
from torch import nn

from agreid.registries import CHECKPOINT_FORMAT_REGISTRY

from ..meta_arch.secap import SeCap
from ..meta_arch.vdt import VDT
from . import ConvertedState

HEADS = ("heads", "local_heads", "view_heads")
_HEAD_KEY = re.compile(r"^(%s)\.(weight|bottleneck\.0\.(.+))$" % "|".join(HEADS))


def _head_key(key: str) -> Optional[str]:
    m = _HEAD_KEY.match(key)
    if m is None:
        return None
    return f"{m.group(1)}.classifier.weight" if m.group(2) == "weight" else f"{m.group(1)}.bottleneck.{m.group(3)}"


def _secap_key(key: str, last: int) -> Optional[str]:
    """agreid name of a SeCap reference key; None for a dead key."""
    if key.startswith("backbone.base."):
        rest = key[len("backbone.base."):]
        if rest.startswith("norm.") or rest.startswith(f"blocks.{last}."):
            return None
        return "backbone." + rest
    if key.startswith("backbone.b1.0."):
        return f"backbone.blocks.{last}." + key[len("backbone.b1.0."):]
    if key.startswith("backbone.b1.1."):
        return "backbone.norm." + key[len("backbone.b1.1."):]
    if key.startswith("backbone.prm.attn2.") or key == "backbone.lfrm.out_token":
        return None
    if key.startswith("backbone."):
        return key[len("backbone."):]
    return _head_key(key) or key


def _convert(state_dict: Mapping[str, torch.Tensor], model: nn.Module, fmt: str, rename) -> ConvertedState:
    out: Dict[str, torch.Tensor] = {}
    dead = []
    for key, value in state_dict.items():
        new = rename(key)
        if new is None:
            dead.append(key)
        else:
            out[new] = value
    notes = ["view classifier rows kept (aerial = row 1): agreid maps view codes to the reference's labels"]
    return ConvertedState(format=fmt, state_dict=out, dead=sorted(dead), notes=notes)


@CHECKPOINT_FORMAT_REGISTRY.register("fastreid_secap")
def convert_fastreid_secap(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[ConvertedState]:
    """``Baseline_multiview_SeCap`` state dict → :class:`SeCap` keys; None for other formats or models."""
    model = getattr(model, "module", model)
    if not isinstance(model, SeCap) or "backbone.b1.0.norm1.weight" not in state_dict \
            or "backbone.prm.cross_attn.q_proj.weight" not in state_dict:
        return None
    last = len(model.backbone.blocks) - 1
    return _convert(state_dict, model, "fastreid_secap", lambda k: _secap_key(k, last))


@CHECKPOINT_FORMAT_REGISTRY.register("fastreid_vdt")
def convert_fastreid_vdt(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[ConvertedState]:
    """``Baseline_multiview`` (one-branch VDT) state dict → :class:`VDT` keys; None for other formats or models."""
    model = getattr(model, "module", model)
    if type(model) is not VDT or "backbone.view_token" not in state_dict or "view_heads.weight" not in state_dict:
        return None
    return _convert(state_dict, model, "fastreid_vdt", lambda k: _head_key(k) or k)
