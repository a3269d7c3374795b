"""SVPR-ReID checkpoints (``ahu-xhao/SVPR-ReID``): bare ``model.state_dict()`` files of ``CLIP_SVPR_ReID``
(``ViT-B-16_<epoch>.pth``, ``transformer_best.pth``; ``module.``-prefixed when trained with DataParallel).

agreid's :class:`~agreid.modeling.meta_arch.svpr.SVPR` keeps the reference's key names, so a file of the same
configuration loads without this converter. It completes a file for a model configured differently:

- attribute heads (``ASMOE.attributsHeader.<name>.*``) are matched by position when the model's attribute names
  differ (a model built from MODEL.ATTRIBUTE_CLASSES alone names them ``attribute_<i>``); the reference orders
  them by sorted name, as the data adapters do. Heads the model does not have are dead weights;
- the reference's view head has 3 classes with its own labels (ground 0, aerial 1; AG-ReID.v2 CCTV 0, wearable 1,
  UAV 2), which are agreid's ``svpr_views`` labels too: a model with fewer view classes (MODEL.SVPR.VIEW_CLASSES)
  takes the first rows of the classifier;
- CVPR's three ``blocks.<i>`` are one shared module: a file holding only ``blocks.0`` fills the others.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from agreid.registries import CHECKPOINT_FORMAT_REGISTRY

from . import ConvertedState

FORMAT = "SVPR-ReID"
HEADS = "ASMOE.attributsHeader."
VIEW_CLASSIFIER = "header_view.classifier.weight"
MARKERS = ("BACKBONE.visual.new_positional_embedding", "TextNet.view_promptlearner.token_prefix_suffix",
           "use_cvpr_token")


def is_svpr_state(keys: List[str]) -> bool:
    """True for the key layout of a ``CLIP_SVPR_ReID`` state dict."""
    return all(m in keys for m in MARKERS) and any(k.startswith("CVPRNet.") for k in keys)


def attribute_heads(keys: List[str]) -> List[str]:
    """Attribute head names in the order their keys appear (the reference's ModuleDict order)."""
    return list(dict.fromkeys(k[len(HEADS):].rsplit(".", 2)[0] for k in keys if k.startswith(HEADS)))


@CHECKPOINT_FORMAT_REGISTRY.register(FORMAT)
def convert_svpr(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[ConvertedState]:
    """Complete an SVPR-ReID state dict for an :class:`SVPR` model (see the module docstring); None for other
    files or models."""
    from ..meta_arch.svpr import SVPR

    target = getattr(model, "module", model)
    if not isinstance(target, SVPR):
        return None
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    if not is_svpr_state(list(state)):
        return None
    own = target.state_dict()
    out: Dict[str, torch.Tensor] = {}
    dead: List[str] = []
    notes: List[str] = []
    file_heads = attribute_heads(list(state))
    model_heads = list(target.attribute_names)
    renamed = {}
    if file_heads != model_heads and len(file_heads) == len(model_heads):
        renamed = dict(zip(file_heads, model_heads))
        notes.append("attribute heads matched by position: " + ", ".join(f"'{a}' -> '{b}'"
                                                                           for a, b in renamed.items() if a != b))
    for key, value in state.items():
        if key.startswith(HEADS) and renamed:
            suffix = key[len(HEADS):]
            name = suffix.rsplit(".", 2)[0]
            key = HEADS + renamed.get(name, name) + suffix[len(name):]
        if key.startswith("ASMOE.") and key not in own:
            dead.append(key)
            continue
        if key == VIEW_CLASSIFIER and key in own and value.shape[0] > own[key].shape[0]:
            n = own[key].shape[0]
            value = value[:n]
            notes.append(f"the reference's {state[VIEW_CLASSIFIER].shape[0]}-class view head cut to the model's "
                         f"{n} classes (labels 0..{n - 1} mean the same: ground 0, aerial 1)")
        out[key] = value
    if any(k.startswith("ASMOE.") for k in dead):
        notes.append("the file has attribute (ASMoE) weights the model does not use (MODEL.ATTRIBUTE_CLASSES "
                     "empty or with other attributes); not loaded")
    for key in own:
        if key.startswith(("CVPRNet.blocks.1.", "CVPRNet.blocks.2.")) and key not in out:
            first = "CVPRNet.blocks.0." + key.split(".", 3)[3]
            if first in out:
                out[key] = out[first]
    return ConvertedState(format=FORMAT, state_dict=out, dead=dead, notes=notes)
