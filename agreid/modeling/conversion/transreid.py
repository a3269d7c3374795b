"""TransReID checkpoints (``damo-cv/TransReID``): bare ``model.state_dict()`` files of ``transformer_<epoch>.pth``.

Key families (``module.``-prefixed when trained with DDP): ``base.*`` (the ViT), JPM ``b1.{0,1}.*`` /
``b2.{0,1}.*`` (last block + norm copies), ``bottleneck[_i].*`` and ``classifier[_i].weight``. They map to
agreid's :class:`~agreid.modeling.meta_arch.transreid.TransReID` as ``backbone.*``, ``global_branch.*``,
``local_branch.*``, ``heads.{0|i}.bottleneck.*`` and ``heads.{0|i}.classifier.weight``.

Dead keys, listed and not loaded: ``base.fc.*`` (the ImageNet head the reference builds and never uses) and,
with JPM, ``base.blocks.<last>.*`` and ``base.norm.*`` (the reference runs copies of them, in ``b1`` / ``b2``).
"""
from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from agreid.registries import CHECKPOINT_FORMAT_REGISTRY
from agreid.utils.errors import CheckpointError

from ..meta_arch.transreid import TransReID
from . import ConvertedState

FORMAT = "TransReID"
_HEAD = re.compile(r"^(bottleneck|classifier)(?:_(\d+))?\.(.+)$")
_BRANCH = {"b1.": "global_branch.", "b2.": "local_branch."}


def is_transreid_state(keys: List[str]) -> bool:
    """True for the key layout of a TransReID ``build_transformer[_local]`` state dict."""
    return (any(k.startswith("base.") for k in keys) and "classifier.weight" in keys
            and any(k.startswith("bottleneck.") for k in keys))


def rename_key(key: str) -> str:
    """agreid name of a (``module.``-stripped) TransReID key; unknown keys are returned unchanged."""
    if key.startswith("base."):
        return "backbone." + key[len("base."):]
    for old, new in _BRANCH.items():
        if key.startswith(old):
            return new + key[len(old):]
    m = _HEAD.match(key)
    if m:
        kind, index, rest = m.groups()
        return f"heads.{index or 0}.{kind}.{rest}"
    return key


def _is_dead(key: str, model: TransReID) -> bool:
    """A renamed key the agreid model deliberately lacks: the ImageNet fc, or with JPM the last block and norm."""
    if key.startswith("backbone.fc."):
        return True
    if not model.jpm:
        return False
    last = f"backbone.blocks.{len(model.backbone.blocks)}."
    return key.startswith(("backbone.norm.", last))


@CHECKPOINT_FORMAT_REGISTRY.register(FORMAT)
def convert_transreid(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[ConvertedState]:
    """Rename a TransReID state dict for a :class:`TransReID` model; None for other files or models.

    A JPM file for a model without JPM raises :class:`CheckpointError` (it would otherwise load silently).
    """
    target = getattr(model, "module", model)
    if not isinstance(target, TransReID):
        return None
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    if not is_transreid_state(list(state)):
        return None
    model_keys = set(target.state_dict())
    out: Dict[str, torch.Tensor] = {}
    dead: List[str] = []
    for key, value in state.items():
        new = rename_key(key)
        if _is_dead(new, target):
            dead.append(key)
        else:
            out[new] = value
    has_jpm = any(k.startswith("b1.") for k in state)
    if has_jpm and not target.jpm:
        # every key of the plain model is in a JPM file, so it would "load" and evaluate with the unused norm
        raise CheckpointError("This TransReID checkpoint was trained with JPM (it has b1./b2. branches) but "
                              "MODEL.TRANSREID.JPM is False; set MODEL.TRANSREID.JPM True (and its stride / SIE)")
    notes = []
    if "base.sie_embed" in state and "backbone.sie_embed" not in model_keys:
        notes.append("the file has SIE embeddings but the model has none (set MODEL.SIE.* and the counts)")
    return ConvertedState(format=FORMAT, state_dict=out, dead=dead, notes=notes)
