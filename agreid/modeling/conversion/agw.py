"""Checkpoints of AGW saved by its two reference repositories, recognised from their keys.

**Cross-modal** (mangye16/Cross-Modal-Re-ID-baseline ``train.py``): ``save_model/<suffix>_best.t`` is
``{"net": state_dict, "cmc", "mAP", "mINP", "epoch"}``; the loader hands over ``net``. Renames:
``visible_module.visible.{conv1,bn1}.*`` → ``backbone.stems.0.*``, ``thermal_module.thermal.{conv1,bn1}.*`` →
``backbone.stems.1.*``, ``base_resnet.base.layer*`` → ``backbone.layer*``, ``NL_<k>.<i>.*`` →
``backbone.non_local<k>.<i>.*``, ``bottleneck.*`` / ``classifier.weight`` → ``heads.*``. Dead (listed, not
instantiated): the complete ResNet-50 copies the modality modules hold but never run past their stems
(``visible_module.visible.layer*``, ``thermal_module.thermal.layer*``) and the trunk's unused stem
(``base_resnet.base.{conv1,bn1}``): 47,006,528 of the file's 71,365,839 parameters.

**ReID-Survey** (mangye16/ReID-Survey, ``Baseline`` with ``resnet50_nl``): ``base.{conv1,bn1}.*`` →
``backbone.stems.0.*``, ``base.layer*`` → ``backbone.layer*``, ``base.NL_<k>.<i>.*`` →
``backbone.non_local<k>.<i>.*``,
``global_pool.p`` (shape [1]) → ``heads.pool.p``, ``bottleneck.*`` / ``classifier.weight`` → ``heads.*``.

Non-local keys: ``g.0`` (cross-modal, a one-conv Sequential) or ``g`` → ``g``; ``W.0`` → ``out_conv``;
``W.1`` → ``out_bn``; ``theta`` and ``phi`` keep their names.

Files current torch cannot read with ``weights_only=True`` (the cross-modal ``*_best.t`` stores numpy values beside
``net``; ReID-Survey with pytorch-ignite 0.1.2 pickles the whole module) are refused by the loader with the reason
(agreid never unpickles code); INSTALL.md, "Checkpoints saved by reference code", gives the one-line re-save to
run once in the reference's own environment.
"""
from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from agreid.registries import CHECKPOINT_FORMAT_REGISTRY
from agreid.utils.errors import CheckpointError

from ..meta_arch.agw import AGW
from . import ConvertedState

_NL = re.compile(r"^NL_(\d)\.(\d+)\.(.+)$")
_NL_PARTS = (("g.0.", "g."), ("W.0.", "out_conv."), ("W.1.", "out_bn."))
_STEM = ("conv1.", "bn1.")
_HEAD = ("bottleneck.", "classifier.")


def _non_local_key(key: str) -> Optional[str]:
    """agreid name of a reference ``NL_<k>.<i>.*`` key (without any ``base.`` prefix); None if it is not one."""
    m = _NL.match(key)
    if m is None:
        return None
    stage, index, rest = m.groups()
    for old, new in _NL_PARTS:
        if rest.startswith(old):
            rest = new + rest[len(old):]
            break
    return f"backbone.non_local{stage}.{index}.{rest}"


def _head_key(key: str) -> Optional[str]:
    return "heads." + key if key.startswith(_HEAD) else None


def _cross_modal_key(key: str) -> Optional[str]:
    """agreid name of a cross-modal ``embed_net`` key; None for a dead one."""
    for prefix, stem in (("visible_module.visible.", 0), ("thermal_module.thermal.", 1)):
        if key.startswith(prefix):
            rest = key[len(prefix):]
            return f"backbone.stems.{stem}.{rest}" if rest.startswith(_STEM) else None
    if key.startswith("base_resnet.base."):
        rest = key[len("base_resnet.base."):]
        return "backbone." + rest if rest.startswith("layer") else None
    return _non_local_key(key) or _head_key(key) or key


def _survey_key(key: str) -> str:
    """agreid name of a ReID-Survey ``Baseline`` key (unknown keys are returned unchanged)."""
    if key.startswith("base."):
        rest = key[len("base."):]
        if rest.startswith(_STEM):
            return "backbone.stems.0." + rest
        return _non_local_key(rest) or "backbone." + rest
    if key == "global_pool.p":
        return "heads.pool.p"
    return _head_key(key) or key


def _target(model: nn.Module) -> Optional[AGW]:
    model = getattr(model, "module", model)
    return model if isinstance(model, AGW) else None


@CHECKPOINT_FORMAT_REGISTRY.register("agw_cross_modal")
def convert_agw_cross_modal(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[ConvertedState]:
    """``embed_net`` state dict → :class:`AGW` keys; None for other files or models."""
    target = _target(model)
    if target is None or "visible_module.visible.conv1.weight" not in state_dict \
            or "thermal_module.thermal.conv1.weight" not in state_dict:
        return None
    if target.backbone.num_stems != 2:
        raise CheckpointError("This is a two-stream AGW checkpoint (Cross-Modal-Re-ID-baseline embed_net) but the "
                              "model has one stem: set MODEL.AGW.TWO_STREAM True (configs/Base-AGW-VI.yml)")
    out: Dict[str, torch.Tensor] = {}
    dead: List[str] = []
    for key, value in state_dict.items():
        new = _cross_modal_key(key)
        if new is None:
            dead.append(key)
        else:
            out[new] = value
    notes = []
    if not target.backbone.stem_relu:
        notes.append("the reference's stems apply ReLU but MODEL.AGW.STEM_RELU is False")
    notes += _keep_loss_state(target, out)
    return ConvertedState(format="agw_cross_modal", state_dict=out, dead=sorted(dead), notes=notes)


@CHECKPOINT_FORMAT_REGISTRY.register("agw_reid_survey")
def convert_agw_reid_survey(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[ConvertedState]:
    """ReID-Survey ``Baseline`` (``resnet50_nl``) state dict → :class:`AGW` keys; None for other files or models.

    The reference's stem has no ReLU and its GeM p is learned; a model built otherwise would load the tensors
    and compute other features, so that is an error naming the setting.
    """
    target = _target(model)
    if target is None or "base.conv1.weight" not in state_dict or "bottleneck.weight" not in state_dict:
        return None
    if not any(k.startswith("base.NL_") for k in state_dict) and "global_pool.p" not in state_dict:
        return None
    problems = []
    if target.backbone.num_stems != 1:
        problems.append("MODEL.AGW.TWO_STREAM False (one stem)")
    if target.backbone.stem_relu:
        problems.append("MODEL.AGW.STEM_RELU False (resnet50_nl has no stem ReLU)")
    pool_p = getattr(target.heads.pool, "p", None)
    if "global_pool.p" in state_dict and not isinstance(pool_p, nn.Parameter):
        problems.append("MODEL.HEADS.POOL gem_learn (the file holds a learned GeM p)")
    if problems:
        raise CheckpointError("This is a ReID-Survey AGW checkpoint (resnet50_nl); the model needs "
                              + ", ".join(problems) + " (configs/Base-AGW.yml)")
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = _survey_key(key)
        if new == "heads.pool.p" and pool_p is not None:
            value = value.reshape(pool_p.shape)
        out[new] = value
    return ConvertedState(format="agw_reid_survey", state_dict=out, notes=_keep_loss_state(target, out))


def _keep_loss_state(model: AGW, out: Dict[str, torch.Tensor]) -> List[str]:
    """Fill the loss modules' tensors (the center-loss centres) from the model itself: ReID-Survey saves them in
    a separate ``*_center_param_<n>.pth``, and evaluation never uses them."""
    own = {k: v for k, v in model.state_dict().items() if k.startswith("losses.") and k not in out}
    out.update(own)
    if not own:
        return []
    return [f"{', '.join(sorted(own))} not in the file (ReID-Survey saves the center-loss centres in "
            f"*_center_param_<n>.pth); kept at their initialisation"]
