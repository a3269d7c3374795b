"""Optimizer construction: parameters merged into one group per (learning rate, weight decay).

Each trainable parameter is classified, then parameters sharing (lr, weight decay) go into ONE
group, so the optimizer's foreach / fused kernels update them together (one group per parameter
makes every step a Python loop over ~200 tensors). Every group carries ``name`` (the categories in
it joined by ``+``, e.g. ``"base"``, ``"bias+norm"``, ``"heads_bias"``) and ``param_names`` (the
parameters' qualified names; torch keeps this key in the optimizer's state dict).

Classification (the union of fast-reid's and TransReID's rules):

- **bias**: by default the parameter's own name is ``bias`` (fast-reid: ``module_param_name``
  looked up in its ``overrides``); ``bias_rule="substring"`` is TransReID's ``"bias" in name`` on
  the qualified name. The two select the same parameters in every agreid model (no agreid parameter
  has "bias" elsewhere in its name). Biases get ``lr x bias_lr_factor`` and ``weight_decay_bias``.
- **norm**: a parameter owned directly by a normalisation module (BatchNorm / SyncBatchNorm,
  GroupNorm, InstanceNorm, LayerNorm, ... by module type, as fast-reid) gets ``weight_decay_norm``;
  a norm layer's bias is a bias (fast-reid applies the bias override after the norm decay), so
  only norm weights end up with ``weight_decay_norm``. TransReID has no norm rule: use
  ``weight_decay_norm = weight_decay`` (the default, ``SOLVER.WEIGHT_DECAY_NORM < 0``).
- **heads**: names starting with ``heads.`` (or containing ``.heads.``) get ``lr x heads_lr_factor``
  on top of the bias factor (fast-reid: top-level module ``heads``).

Recipes: SeCap / VDT (fast-reid defaults): ``WEIGHT_DECAY 1e-4``, ``WEIGHT_DECAY_NORM 5e-4``,
``WEIGHT_DECAY_BIAS 5e-4``, factors 1 -> two groups, ``base`` (wd 1e-4) and ``bias+norm``
(wd 5e-4), which are also exactly fast-reid's ``ContiguousParams`` buffers. TransReID:
``WEIGHT_DECAY 1e-4``, ``WEIGHT_DECAY_BIAS 1e-4``, ``BIAS_LR_FACTOR 2`` -> ``base+norm`` (lr, 1e-4)
and ``bias`` (2 lr, 1e-4).
"""
from __future__ import annotations

import inspect
from typing import Dict, Iterable, List, Mapping, Optional, Set, Tuple

import torch
from torch import nn

OPTIMIZERS = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
NORM_TYPES: Tuple[type, ...] = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm,
                                nn.modules.instancenorm._InstanceNorm, nn.LayerNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    NORM_TYPES = NORM_TYPES + (nn.RMSNorm,)
BIAS_RULES = ("leaf", "substring")


def _is_head(name: str) -> bool:
    return name.startswith("heads.") or ".heads." in name


def param_groups(model: nn.Module, base_lr: float, weight_decay: float, bias_lr_factor: float = 1.0,
                 weight_decay_bias: float = 0.0, heads_lr_factor: float = 1.0, *,
                 weight_decay_norm: Optional[float] = None, bias_rule: str = "leaf",
                 exclude: Optional[Set[int]] = None, lr_factors: Optional[Mapping[str, float]] = None) -> List[dict]:
    """Trainable parameters in one group per distinct (lr, weight_decay), in first-use order.

    ``weight_decay_norm`` None (or negative) means ``weight_decay``. Parameters whose ``id`` is in ``exclude``
    (those stepped by :class:`agreid.solver.own_optimizer.OwnOptimizers`) are left out. ``lr_factors`` multiplies
    the LR of the named parameters (a model's ``param_lr_factors()``, e.g. TF-CLIP's LARGE_FC_LR). Each group is
    ``{"name", "params", "param_names", "lr", "weight_decay"}``; the order of groups and of the
    parameters inside them follows ``model.named_parameters()``, so it is identical on every rank.
    """
    if bias_rule not in BIAS_RULES:
        raise ValueError(f"bias_rule '{bias_rule}' is not one of {BIAS_RULES}")
    wd_norm = weight_decay if weight_decay_norm is None or weight_decay_norm < 0 else weight_decay_norm
    owner: Dict[int, bool] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owner.setdefault(id(p), isinstance(module, NORM_TYPES))
    groups: Dict[Tuple[float, float], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad or (exclude and id(p) in exclude):
            continue
        leaf = name.rsplit(".", 1)[-1]
        is_bias = leaf == "bias" if bias_rule == "leaf" else "bias" in name
        is_norm = owner.get(id(p), False)
        lr, wd = base_lr, weight_decay
        category = "base"
        if is_norm:
            wd, category = wd_norm, "norm"
        if is_bias:
            lr, wd, category = lr * bias_lr_factor, weight_decay_bias, "bias"
        if _is_head(name):
            lr *= heads_lr_factor
            category = "heads" if category == "base" else f"heads_{category}"
        if lr_factors and name in lr_factors:
            lr *= float(lr_factors[name])
            category = f"{category}_x{float(lr_factors[name]):g}"
        group = groups.setdefault((lr, wd), {"name": [], "params": [], "param_names": [], "lr": lr,
                                             "weight_decay": wd})
        if category not in group["name"]:
            group["name"].append(category)
        group["params"].append(p)
        group["param_names"].append(name)
    return [{**g, "name": "+".join(g["name"])} for g in groups.values()]


def _implementation(cls: type, groups: List[dict], impl: str) -> Dict[str, bool]:
    """``fused`` when every parameter is a floating CUDA tensor and ``cls`` has it, else ``foreach``."""
    if impl == "default":
        return {}
    accepts = inspect.signature(cls.__init__).parameters
    params = [p for g in groups for p in g["params"]]
    if impl in ("auto", "fused") and "fused" in accepts and params and all(
            p.is_cuda and p.is_floating_point() for p in params):
        return {"fused": True}
    if impl == "fused":
        raise ValueError(f"{cls.__name__}(fused=True) needs every parameter on CUDA")
    return {"foreach": True} if "foreach" in accepts else {}


def build_optimizer(name: str, groups: Iterable[dict], base_lr: float, momentum: float = 0.9,
                    nesterov: bool = False, impl: str = "auto") -> torch.optim.Optimizer:
    """``SOLVER.OPT`` over ``groups``; ``impl``: auto (fused on CUDA, else foreach), foreach, fused, default."""
    if name not in OPTIMIZERS:
        raise ValueError(f"SOLVER.OPT '{name}' is not one of {sorted(OPTIMIZERS)}")
    groups = list(groups)
    cls = OPTIMIZERS[name]
    kwargs = {"momentum": momentum, "nesterov": nesterov} if name == "SGD" else {}
    kwargs.update(_implementation(cls, groups, impl))
    return cls(groups, lr=base_lr, **kwargs)


def optimizer_from_config(cfg, model: nn.Module, exclude: Optional[Set[int]] = None) -> torch.optim.Optimizer:
    """SOLVER's optimizer over ``model``'s trainable parameters, except the ids in ``exclude``; a model defining
    ``param_lr_factors() -> {name: factor}`` gets those LR multipliers."""
    s = cfg.SOLVER
    base = getattr(model, "module", model)
    factors = base.param_lr_factors() if hasattr(base, "param_lr_factors") else None
    groups = param_groups(model, s.BASE_LR, s.WEIGHT_DECAY, s.BIAS_LR_FACTOR, s.WEIGHT_DECAY_BIAS,
                          s.HEADS_LR_FACTOR, weight_decay_norm=s.get("WEIGHT_DECAY_NORM", -1.0),
                          bias_rule=s.get("BIAS_RULE", "leaf"), exclude=exclude, lr_factors=factors)
    return build_optimizer(s.OPT, groups, s.BASE_LR, s.MOMENTUM, s.NESTEROV)


def clip_grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float, norm_type: float) -> float:
    return float(torch.nn.utils.clip_grad_norm_(list(params), max_norm, norm_type))
