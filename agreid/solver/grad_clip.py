"""Gradient clipping as a function of the parameters: whole-model norm, per-parameter norm, value.

Usage in a training step, after ``backward()`` (and after ``GradScaler.unscale_`` under fp16 AMP)
and before ``optimizer.step()``::

    clip = build_grad_clipper(c.CLIP_TYPE, c.MAX_NORM, c.NORM_TYPE)      # c = cfg.SOLVER.CLIP_GRADIENTS
    ...
    clip([p for p in model.parameters() if p.requires_grad])

Types (``SOLVER.CLIP_GRADIENTS.CLIP_TYPE``):

``norm``
    ``torch.nn.utils.clip_grad_norm_`` over all parameters together: one total norm, one scale.
``norm_per_param``
    every parameter's gradient is clipped to norm ``MAX_NORM`` on its own, as fast-reid's
    ``_generate_optimizer_class_with_gradient_clipping(per_param_clipper=...)`` with ``CLIP_TYPE
    norm`` (each ``p`` gets ``clip_grad_norm_(p, CLIP_VALUE, NORM_TYPE)``: scale
    ``min(1, max_norm / (||g|| + 1e-6))``). Vectorised: per-device ``torch._foreach_norm`` and one
    ``_foreach_mul_``; no host synchronisation.
``norm_per_group``
    the same per group of parameters: each group's concatenated gradient is clipped to
    ``MAX_NORM``. This is what SeCap / VDT actually ran: fast-reid's ``build_optimizer`` defaults to
    ``contiguous=True``, whose ``ContiguousParams`` replaces the parameters of every (lr, weight
    decay) group by one flat buffer, so the "per-parameter" clipper sees one tensor per group
    (torch 1.6, per their INSTALL.md). Needs ``param_groups`` (e.g. ``optimizer.param_groups``,
    whose groups agreid forms by the same (lr, weight decay) key).
``value``
    ``torch.nn.utils.clip_grad_value_`` with clip value ``MAX_NORM`` (fast-reid's ``CLIP_VALUE``).

The clipper ignores parameters without a gradient and returns None.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

CLIP_TYPES = ("norm", "norm_per_param", "norm_per_group", "value")
EPS = 1e-6  # as torch.nn.utils.clip_grad_norm_

GradClipper = Callable[[Iterable[nn.Parameter]], None]


def _grads_by_device(params: Iterable[torch.Tensor]) -> Dict[Tuple[torch.device, torch.dtype], List[torch.Tensor]]:
    out: Dict[Tuple[torch.device, torch.dtype], List[torch.Tensor]] = defaultdict(list)
    for p in params:
        if p.grad is not None:
            out[(p.grad.device, p.grad.dtype)].append(p.grad)
    return out


@torch.no_grad()
def clip_grad_norm_per_param_(params: Iterable[nn.Parameter], max_norm: float, norm_type: float = 2.0) -> None:
    """Scale each gradient g by ``min(1, max_norm / (||g||_p + 1e-6))`` (its own norm), in place."""
    for grads in _grads_by_device(params).values():
        norms = torch.stack(torch._foreach_norm(grads, norm_type))
        coefs = (max_norm / (norms + EPS)).clamp_(max=1.0)
        torch._foreach_mul_(grads, list(coefs.to(grads[0].dtype).unbind(0)))


@torch.no_grad()
def clip_grad_norm_per_group_(groups: Sequence[Sequence[nn.Parameter]], max_norm: float,
                              norm_type: float = 2.0, only: Optional[Iterable[nn.Parameter]] = None,
                              _cache: Optional[dict] = None) -> None:
    """Scale all gradients of each group by ``min(1, max_norm / (||concat(g)||_p + 1e-6))``, in place.

    ``only`` restricts the groups to those parameters (identity); None uses every parameter in them.
    ``_cache`` (a dict kept by the caller) reuses the device index tensors between calls.
    """
    keep = None if only is None else {id(p) for p in only}
    by_device: Dict[Tuple[torch.device, torch.dtype], Tuple[List[torch.Tensor], List[int]]] = defaultdict(
        lambda: ([], []))
    for index, group in enumerate(groups):
        for p in group:
            if p.grad is not None and (keep is None or id(p) in keep):
                grads, owner = by_device[(p.grad.device, p.grad.dtype)]
                grads.append(p.grad)
                owner.append(index)
    if not by_device:
        return
    n_groups = len(groups)
    inf = norm_type == float("inf")
    parts = []  # per device and dtype: (grads, owner index tensor)
    device_acc = []  # per device: (n_groups,) sums of p-th powers of the norms, or maxima for inf
    for key, (grads, owner) in by_device.items():
        cache_key = (key, tuple(owner))
        idx = None if _cache is None else _cache.get(cache_key)
        if idx is None:
            idx = torch.tensor(owner, device=grads[0].device)
            if _cache is not None:
                if len(_cache) > 64:  # gradients present vary from call to call: do not grow forever
                    _cache.clear()
                _cache[cache_key] = idx
        parts.append((grads, idx))
        norms = torch.stack(torch._foreach_norm(grads, norm_type)).float()
        acc = torch.zeros(n_groups, device=norms.device)
        if inf:
            acc.scatter_reduce_(0, idx, norms, "amax")
        else:
            acc.index_add_(0, idx, norms.pow(norm_type))
        device_acc.append(acc)
    first = device_acc[0].device
    stacked = torch.stack([a.to(first) for a in device_acc])
    total = stacked.amax(0) if inf else stacked.sum(0).pow(1.0 / norm_type)
    coefs = (max_norm / (total + EPS)).clamp_(max=1.0)
    for grads, idx in parts:
        c = coefs.to(idx.device)[idx].to(grads[0].dtype)
        torch._foreach_mul_(grads, list(c.unbind(0)))


def build_grad_clipper(clip_type: str, max_norm: float, norm_type: float = 2.0, *,
                       param_groups: Optional[Sequence[Union[dict, Sequence[nn.Parameter]]]] = None) -> GradClipper:
    """A function ``clip(params)`` clipping the gradients of ``params`` in place (see the module doc).

    ``clip_type``: ``norm`` (all together), ``norm_per_param`` (fast-reid's per-parameter clipper),
    ``norm_per_group`` (each of ``param_groups`` together: fast-reid with ContiguousParams, as
    SeCap/VDT ran; pass ``optimizer.param_groups`` or lists of parameters) or ``value``
    (``clip_grad_value_`` at ``max_norm``). ``norm_type`` is p of the L-p norm (``inf`` allowed).
    """
    max_norm, norm_type = float(max_norm), float(norm_type)
    if clip_type == "norm":
        def clip(params: Iterable[nn.Parameter]) -> None:
            torch.nn.utils.clip_grad_norm_(list(params), max_norm, norm_type, foreach=True)
    elif clip_type == "norm_per_param":
        def clip(params: Iterable[nn.Parameter]) -> None:
            clip_grad_norm_per_param_(params, max_norm, norm_type)
    elif clip_type == "norm_per_group":
        if param_groups is None:
            raise ValueError("CLIP_TYPE 'norm_per_group' needs param_groups (e.g. optimizer.param_groups)")
        groups = [list(g["params"]) if isinstance(g, dict) else list(g) for g in param_groups]
        cache: dict = {}

        def clip(params: Iterable[nn.Parameter]) -> None:
            clip_grad_norm_per_group_(groups, max_norm, norm_type, only=params, _cache=cache)
    elif clip_type == "value":
        def clip(params: Iterable[nn.Parameter]) -> None:
            torch.nn.utils.clip_grad_value_(list(params), max_norm, foreach=True)
    else:
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE '{clip_type}' is not one of {CLIP_TYPES}")
    clip.__doc__ = f"Clip gradients in place: {clip_type}, max {max_norm}, L{norm_type} norm."
    return clip


def grad_clipper_from_config(cfg, optimizer: Optional[torch.optim.Optimizer] = None) -> Optional[GradClipper]:
    """``SOLVER.CLIP_GRADIENTS`` as a clipper, or None when disabled (``norm_per_group`` needs ``optimizer``)."""
    c = cfg.SOLVER.CLIP_GRADIENTS
    if not c.ENABLED:
        return None
    clip_type = c.get("CLIP_TYPE", "norm")
    groups = optimizer.param_groups if (optimizer is not None and clip_type == "norm_per_group") else None
    return build_grad_clipper(clip_type, c.MAX_NORM, c.NORM_TYPE, param_groups=groups)
