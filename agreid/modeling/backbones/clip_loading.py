"""Read CLIP weight files into a state dict and build open_clip's ``CLIP`` from it or from architecture dims.

The CLIP-based methods (CLIP-ReID, MSP, SVPR-ReID, TF-CLIP) start from the OpenAI release files
(``ViT-B-16.pt``, ``RN50.pt``: TorchScript archives) or from plain state dicts / open_clip checkpoints in the
same key layout (``visual.*``, ``transformer.*``, ``token_embedding.weight``, ``positional_embedding``,
``ln_final.*``, ``text_projection``, ``logit_scale``). Nothing is downloaded: the file is MODEL.PRETRAIN_PATH.

- :func:`read_clip_state_dict` reads a file: a TorchScript archive the way ``open_clip.load_openai_model`` does
  (``torch.jit.load`` on the CPU, its state dict kept, the module dropped); anything else with
  ``torch.load(weights_only=True)``. Values come back as float32 (the OpenAI files are partly fp16; every
  reference up-casts them).
- :class:`CLIPDims` is the architecture, read from a state dict's shapes (:func:`dims_from_state_dict`, as the
  OpenAI ``build_model`` infers it) or taken from :data:`OPENAI_DIMS` for a random build.
- :func:`build_clip` builds open_clip's ``CLIP`` (QuickGELU, as OpenAI trained it) with random weights or with
  a state dict loaded strictly. open_clip's own ``create_model(pretrained=<OpenAI file>)`` fails on these files
  and its position-embedding resize (bicubic, antialiased) matches none of the references, so the image-size
  adaptation is left to the encoders (:mod:`.clip_vit`, :mod:`.clip_resnet`).
"""
from __future__ import annotations

import dataclasses
import os
import zipfile
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple, Union

import torch

from agreid.utils.errors import CheckpointError

from ..pretrained import read_state_dict, strip_prefixes

# entries of the OpenAI files that are not weights (ints), removed before loading, as every reference does
NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class CLIPDims:
    """Architecture of a CLIP model, in the terms of OpenAI's ``build_model``.

    ``vision_layers`` is an int for a ViT and a 4-tuple of bottleneck counts for a ModifiedResNet.
    ``vision_grid`` is the side of the pretrained square grid: patches per side (ViT, 14 for ViT-B/16 at 224) or
    the attention-pool grid (ResNet, 7 at 224). Heads are width / 64 (ViT and text) and width · 32 / 64 (ResNet).
    """

    embed_dim: int
    vision_layers: Union[int, Tuple[int, int, int, int]]
    vision_width: int
    vision_patch_size: int
    vision_grid: int
    context_length: int
    vocab_size: int
    text_width: int
    text_layers: int

    @property
    def is_vit(self) -> bool:
        return isinstance(self.vision_layers, int)

    @property
    def text_heads(self) -> int:
        return max(self.text_width // 64, 1)

    @property
    def image_resolution(self) -> int:
        """The pretrained square input size (ViT: patch · grid; ResNet: 32 · attention-pool grid)."""
        return self.vision_patch_size * self.vision_grid if self.is_vit else 32 * self.vision_grid

    @property
    def feature_dims(self) -> Tuple[int, int]:
        """(image feature width, projected width): (768, 512) for ViT-B/16, (2048, 1024) for RN50."""
        return (self.vision_width if self.is_vit else self.vision_width * 32), self.embed_dim

    def replace(self, **changes) -> "CLIPDims":
        return dataclasses.replace(self, **changes)


OPENAI_DIMS: Dict[str, CLIPDims] = {
    "ViT-B-16": CLIPDims(embed_dim=512, vision_layers=12, vision_width=768, vision_patch_size=16, vision_grid=14,
                         context_length=77, vocab_size=49408, text_width=512, text_layers=12),
    "RN50": CLIPDims(embed_dim=1024, vision_layers=(3, 4, 6, 3), vision_width=64, vision_patch_size=0,
                     vision_grid=7, context_length=77, vocab_size=49408, text_width=512, text_layers=12),
}
"""The OpenAI release architectures (the defaults of a random build)."""


def named_dims(name: str, **overrides) -> CLIPDims:
    """:data:`OPENAI_DIMS` ``name`` with the fields in ``overrides`` replaced where they are truthy (0 / empty:
    keep), e.g. a tiny test variant ``named_dims("ViT-B-16", vision_width=64, vision_layers=2, ...)``."""
    if name not in OPENAI_DIMS:
        raise ValueError(f"Unknown CLIP architecture '{name}'; choose one of {', '.join(OPENAI_DIMS)}")
    changes = {k: (tuple(v) if isinstance(v, (list, tuple)) and len(v) > 1 else
                   v[0] if isinstance(v, (list, tuple)) else v) for k, v in overrides.items() if v}
    dims = OPENAI_DIMS[name].replace(**changes)
    if dims.is_vit != OPENAI_DIMS[name].is_vit:
        want = "one depth" if OPENAI_DIMS[name].is_vit else "four stage depths"
        raise ValueError(f"{name} needs vision_layers as {want}, got {dims.vision_layers}")
    return dims


def clip_dims_from_config(clip_cfg) -> CLIPDims:
    """MODEL.CLIP's architecture: NAME's dims with the random-build overrides (EMBED_DIM, VISION_*, TEXT_*)."""
    from agreid.config.config import ConfigError

    c = clip_cfg
    try:
        return named_dims(c.NAME, embed_dim=c.EMBED_DIM, vision_layers=list(c.VISION_LAYERS),
                          vision_width=c.VISION_WIDTH, vision_patch_size=c.VISION_PATCH_SIZE,
                          vision_grid=c.VISION_GRID, text_width=c.TEXT_WIDTH, text_layers=c.TEXT_LAYERS)
    except ValueError as e:
        raise ConfigError(f"MODEL.CLIP: {e}") from None


def _is_torchscript_archive(path: str) -> bool:
    """True for a zip whose entries include TorchScript code (``<root>/code/`` or ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in z.namelist())


def read_clip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The CLIP weights in ``path`` as a float32 state dict in the OpenAI key layout.

    A TorchScript archive (the OpenAI release files) is loaded with ``torch.jit.load`` on the CPU and only its
    state dict kept; any other file is read with ``torch.load(weights_only=True)``, unwrapped from
    ``{"state_dict": ...}`` / ``{"model": ...}`` and stripped of a ``module.`` prefix (open_clip training
    checkpoints). Non-tensor entries and causal-mask buffers (``attn_mask``, rebuilt by the model) are dropped.
    A missing file, an unreadable one, or one without the CLIP keys raises :class:`CheckpointError`.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"CLIP weights '{path}' (MODEL.PRETRAIN_PATH) is not a file; give a local OpenAI "
                              f"release file (ViT-B-16.pt, RN50.pt) or a CLIP state dict (nothing is downloaded)")
    try:
        obj = (torch.jit.load(path, map_location="cpu").state_dict() if _is_torchscript_archive(path)
               else read_state_dict(path))  # weights only; unwrapped; non-tensors dropped
    except Exception as e:
        raise CheckpointError(f"Cannot read CLIP weights '{path}': {type(e).__name__}: "
                              f"{(str(e).strip().splitlines() or [''])[0]}") from None
    state = {k: v for k, v in strip_prefixes(obj, ("module.",)).items()
             if isinstance(v, torch.Tensor) and k not in NON_WEIGHT_KEYS and not k.endswith("attn_mask")}
    missing = [k for k in ("text_projection", "ln_final.weight", "visual.conv1.weight") if k not in state]
    if missing:
        raise CheckpointError(f"'{path}' is not a CLIP state dict in the OpenAI layout: no {', '.join(missing)} "
                              f"(found keys such as {', '.join(sorted(state)[:3]) or '(none)'})")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _count_indices(state: Mapping[str, torch.Tensor], prefix: str, position: int) -> int:
    return len({k.split(".")[position] for k in state if k.startswith(prefix)})


def dims_from_state_dict(state: Mapping[str, torch.Tensor]) -> CLIPDims:
    """The architecture of a CLIP state dict, inferred from its shapes as OpenAI's ``build_model`` does."""
    try:
        if "visual.proj" in state:
            pos = state["visual.positional_embedding"].shape[0] - 1
            conv = state["visual.conv1.weight"]
            layers: Union[int, Tuple[int, ...]] = sum(
                1 for k in state if k.startswith("visual.") and k.endswith(".attn.in_proj_weight"))
            width, patch = conv.shape[0], conv.shape[-1]
        else:
            pos = state["visual.attnpool.positional_embedding"].shape[0] - 1
            layers = tuple(_count_indices(state, f"visual.layer{b}.", 2) for b in (1, 2, 3, 4))
            width, patch = state["visual.layer1.0.conv1.weight"].shape[0], 0
        grid = round(pos ** 0.5)
        if grid * grid != pos:
            raise CheckpointError(f"CLIP visual position embedding has {pos} grid rows, not a square grid")
        return CLIPDims(embed_dim=state["text_projection"].shape[1], vision_layers=layers, vision_width=width,
                        vision_patch_size=patch, vision_grid=grid,
                        context_length=state["positional_embedding"].shape[0],
                        vocab_size=state["token_embedding.weight"].shape[0],
                        text_width=state["ln_final.weight"].shape[0],
                        text_layers=_count_indices(state, "transformer.resblocks.", 2))
    except KeyError as e:
        raise CheckpointError(f"CLIP state dict lacks {e}; cannot infer its architecture") from None


def build_clip(dims: CLIPDims, state_dict: Optional[Mapping[str, torch.Tensor]] = None):
    """open_clip ``CLIP`` of ``dims`` with QuickGELU (fp32, eval mode); ``state_dict`` (OpenAI layout) is loaded
    strictly when given, else the weights are random (open_clip's initialisation)."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(layers=dims.vision_layers, width=dims.vision_width,
                           patch_size=dims.vision_patch_size or 16, image_size=dims.image_resolution)
    text = CLIPTextCfg(context_length=dims.context_length, vocab_size=dims.vocab_size, width=dims.text_width,
                       heads=dims.text_heads, layers=dims.text_layers)
    model = CLIP(dims.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True)
    if state_dict is not None:
        result = model.load_state_dict(dict(state_dict), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(f"CLIP state dict does not fit the {dims} architecture: missing "
                                  f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}")
    return model.float().eval()


def load_clip(path: str = "", dims: Optional[CLIPDims] = None):
    """open_clip ``CLIP`` from the weights file ``path`` (its own architecture), or random weights of ``dims``."""
    if path:
        state = read_clip_state_dict(path)
        return build_clip(dims_from_state_dict(state), state)
    if dims is None:
        raise ValueError("load_clip needs a weights path or the architecture dims")
    return build_clip(dims)


__all__ = ["CLIPDims", "OPENAI_DIMS", "named_dims", "read_clip_state_dict", "dims_from_state_dict", "build_clip",
           "load_clip"]
