"""Load backbone weights (torchvision ResNet, timm ViT) from a local file, adapting what can be adapted.

Position embeddings are resampled to the model's token grid, patch-embedding kernels to its patch
size; other shape mismatches are skipped. Nothing is ever downloaded.
"""
from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from agreid.utils.key_report import group_keys

logger = logging.getLogger(__name__)

STRIP_PREFIXES = ("module.", "backbone.")
WRAPPER_KEYS = ("state_dict", "model")
POS_EMBED_KEY = "pos_embed"
PATCH_EMBED_KEY = "patch_embed.proj.weight"


@dataclass
class LoadReport:
    """What a pretrained load did: keys loaded, adapted, missing from the file, unused, or skipped on shape."""

    path: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=dict)
    adapted: Dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """A compact multi-line description, with indexed keys grouped (``blocks.{0..11}.attn.qkv.weight``)."""
        lines = [f"Loaded {len(self.loaded)} pretrained tensors from {self.path}"]
        lines += [f"  adapted {k}: {how}" for k, how in sorted(self.adapted.items())]
        if self.mismatched:
            lines.append(f"  skipped {len(self.mismatched)} shape-mismatched keys (checkpoint -> model):")
            by_shapes: Dict[Tuple, List[str]] = OrderedDict()
            for k, shapes in sorted(self.mismatched.items()):
                by_shapes.setdefault(shapes, []).append(k)
            for (src, dst), keys in by_shapes.items():
                lines += [f"    {g}: {list(src)} -> {list(dst)}" for g in group_keys(keys)]
        if self.missing:
            lines.append(f"  {len(self.missing)} model keys missing from the checkpoint (left initialised):")
            lines += [f"    {g}" for g in group_keys(self.missing)]
        if self.unexpected:
            lines.append(f"  {len(self.unexpected)} checkpoint keys unused by the model:")
            lines += [f"    {g}" for g in group_keys(self.unexpected)]
        return "\n".join(lines)


def unwrap_state_dict(obj: Any) -> Any:
    """The state dict inside training-checkpoint wrappers (``{"state_dict": ...}``, ``{"model": ...}``, nested)."""
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    return obj


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a state dict from ``.pth``/``.pt``/``.bin`` (``torch.load``, weights only) or ``.safetensors``.

    Wrapped checkpoints (``{"state_dict": ...}`` or ``{"model": ...}``) are unwrapped and non-tensor
    entries dropped. A missing file raises ``FileNotFoundError``; an unreadable one ``RuntimeError``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.PRETRAIN_PATH points to '{path}', which is not a file. Give a local "
                                f"weights file (agreid never downloads weights) or set MODEL.PRETRAIN_PATH ''.")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            obj = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(f"Could not read pretrained weights MODEL.PRETRAIN_PATH='{path}': "
                           f"{type(e).__name__}: {e}") from e
    obj = unwrap_state_dict(obj)
    if not isinstance(obj, Mapping):
        raise RuntimeError(f"MODEL.PRETRAIN_PATH='{path}' holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise RuntimeError(f"MODEL.PRETRAIN_PATH='{path}' contains no tensors")
    return tensors


def strip_prefixes(state: Mapping[str, torch.Tensor],
                   prefixes: Sequence[str] = STRIP_PREFIXES) -> Dict[str, torch.Tensor]:
    """Remove leading wrapper prefixes such as ``module.`` (DataParallel) and ``backbone.`` from every key."""
    out = {}
    for key, value in state.items():
        stripped = True
        while stripped:
            stripped = False
            for p in prefixes:
                if key.startswith(p):
                    key, stripped = key[len(p):], True
        out[key] = value
    return out


def resize_pos_embed(posemb: torch.Tensor, new_grid: Tuple[int, int], num_prefix: int,
                     old_grid: Optional[Tuple[int, int]] = None, mode: str = "bicubic") -> torch.Tensor:
    """Resample the grid part of a 1×(P+N)×D position embedding to ``new_grid``; the P prefix rows are kept.

    ``old_grid`` defaults to a square grid, the layout of ImageNet checkpoints. ``mode`` is the
    interpolation (timm: bicubic; TransReID and SeCap: bilinear), always with ``align_corners=False``.
    """
    n_old = posemb.shape[1] - num_prefix
    if old_grid is None:
        side = math.isqrt(n_old)
        if side * side != n_old:
            raise ValueError(f"Cannot infer the grid of a {n_old}-token position embedding; pass its grid size")
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != n_old:
        raise ValueError(f"Grid {old_grid} does not match the {n_old} grid tokens of the position embedding")
    prefix, grid = posemb[:, :num_prefix], posemb[:, num_prefix:]
    if tuple(old_grid) == tuple(new_grid):
        return posemb.clone()
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, size=tuple(new_grid), mode=mode, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1).to(posemb.dtype)
    return torch.cat([prefix, grid], dim=1)


def resize_patch_kernel(weight: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Resample a D×C×kh×kw patch-embedding kernel to ``size``, keeping each output's response to flat input."""
    from timm.layers import resample_patch_embed
    return resample_patch_embed(weight.float(), list(size)).to(weight.dtype)


def _model_grid(model: nn.Module, pos_len: int) -> Tuple[Tuple[int, int], int]:
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if grid is None:
        raise ValueError("the model has a pos_embed but no patch_embed.grid_size to resample it to")
    return tuple(grid), pos_len - grid[0] * grid[1]


def adapt_state_dict(state: Dict[str, torch.Tensor], model: nn.Module, report: LoadReport,
                     source_grid: Optional[Tuple[int, int]] = None) -> Dict[str, torch.Tensor]:
    """Resample the position embedding and patch kernel in ``state`` to the model's shapes, noting it in ``report``."""
    target = model.state_dict()
    state = dict(state)
    pos = state.get(POS_EMBED_KEY)
    if pos is not None and POS_EMBED_KEY in target and pos.shape != target[POS_EMBED_KEY].shape:
        grid, num_prefix = _model_grid(model, target[POS_EMBED_KEY].shape[1])
        try:
            state[POS_EMBED_KEY] = resize_pos_embed(pos, grid, num_prefix, source_grid)
            old = source_grid or (math.isqrt(pos.shape[1] - num_prefix),) * 2
            report.adapted[POS_EMBED_KEY] = f"grid {old[0]}x{old[1]} -> {grid[0]}x{grid[1]} (bicubic)"
        except ValueError as e:
            logger.warning("Not resizing %s: %s", POS_EMBED_KEY, e)
    kernel = state.get(PATCH_EMBED_KEY)
    if kernel is not None and PATCH_EMBED_KEY in target:
        want = target[PATCH_EMBED_KEY].shape
        if kernel.shape[:2] == want[:2] and kernel.shape[2:] != want[2:]:
            state[PATCH_EMBED_KEY] = resize_patch_kernel(kernel, tuple(want[2:]))
            report.adapted[PATCH_EMBED_KEY] = (f"kernel {tuple(kernel.shape[2:])} -> {tuple(want[2:])}")
    return state


def load_pretrained(model: nn.Module, path: str, source_grid: Optional[Tuple[int, int]] = None,
                    prefixes: Sequence[str] = STRIP_PREFIXES) -> LoadReport:
    """Load the weights in ``path`` into ``model`` non-strictly; return (and log) a :class:`LoadReport`.

    ``source_grid`` is the checkpoint's patch grid (rows, cols) when it is not square.
    """
    report = LoadReport(path=path)
    state = strip_prefixes(read_state_dict(path), prefixes)
    state = adapt_state_dict(state, model, report, source_grid)
    return load_into(model, state, report)


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], report: LoadReport) -> LoadReport:
    """Load the tensors of ``state`` whose name and shape fit ``model``; record the rest in ``report`` and log it.

    The last step of every pretrained loader (generic, TransReID's, SeCap's), after its own key adaptations.
    """
    target = model.state_dict()
    usable = {}
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
        elif value.shape != target[key].shape:
            report.mismatched[key] = (tuple(value.shape), tuple(target[key].shape))
        else:
            usable[key] = value
    model.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = [k for k in target if k not in usable and k not in report.mismatched]
    logger.info(report.summary())
    return report
