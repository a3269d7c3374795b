"""Recognise checkpoints saved by a method's reference code and convert them to agreid's keys, in memory.

Each reference format registers ``fn(state_dict, model) -> ConvertedState | None`` in
``CHECKPOINT_FORMAT_REGISTRY``; it returns None when the keys are not its format. The loader behind
``MODEL.WEIGHTS`` (and ``tools/convert_checkpoint.py``) calls :func:`convert_reference_state` on any
state dict whose keys do not already fit the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from agreid.registries import CHECKPOINT_FORMAT_REGISTRY


@dataclass
class ConvertedState:
    """A reference state dict renamed to the model's keys; ``dead`` lists the reference keys it never uses."""

    format: str
    state_dict: Dict[str, torch.Tensor]
    dead: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def convert_reference_state(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[ConvertedState]:
    """The first registered format that recognises ``state_dict`` for ``model``, converted; None if none does."""
    for name in CHECKPOINT_FORMAT_REGISTRY.names():
        converted = CHECKPOINT_FORMAT_REGISTRY.get(name)(state_dict, model)
        if converted is not None:
            return converted
    return None


__all__ = ["ConvertedState", "convert_reference_state"]

from . import transreid  # noqa: E402,F401  (registers the TransReID format)
from . import fastreid_secap  # noqa: E402,F401  (registers the SeCap / VDT fast-reid formats)
from . import agw  # noqa: E402,F401  (registers the AGW cross-modal and ReID-Survey formats)
from . import tfclip  # noqa: E402,F401  (registers the TF-CLIP / X-TFCLIP format)
from . import clipreid  # noqa: E402,F401  (registers the CLIP-ReID / MSP format)
from . import svpr  # noqa: E402,F401  (registers the SVPR-ReID format)
