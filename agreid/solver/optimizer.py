"""Optimizer construction with per-parameter learning-rate and weight-decay groups."""
from __future__ import annotations

from typing import Iterable, List

import torch
from torch import nn

OPTIMIZERS = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}


def param_groups(model: nn.Module, base_lr: float, weight_decay: float, bias_lr_factor: float = 1.0,
                 weight_decay_bias: float = 0.0, heads_lr_factor: float = 1.0) -> List[dict]:
    """One group per trainable parameter: biases get their own LR factor and decay (BoT convention).

    Parameters under a ``heads`` module get ``heads_lr_factor`` (new layers learn faster).
    """
    groups = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr, wd = base_lr, weight_decay
        if name.startswith("heads.") or ".heads." in name:
            lr *= heads_lr_factor
        if name.endswith("bias"):
            lr *= bias_lr_factor
            wd = weight_decay_bias
        groups.append({"name": name, "params": [p], "lr": lr, "weight_decay": wd})
    return groups


def build_optimizer(name: str, groups: Iterable[dict], base_lr: float, momentum: float = 0.9,
                    nesterov: bool = False) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"SOLVER.OPT '{name}' is not one of {sorted(OPTIMIZERS)}")
    kwargs = {"momentum": momentum, "nesterov": nesterov} if name == "SGD" else {}
    return OPTIMIZERS[name](list(groups), lr=base_lr, **kwargs)


def optimizer_from_config(cfg, model: nn.Module) -> torch.optim.Optimizer:
    s = cfg.SOLVER
    groups = param_groups(model, s.BASE_LR, s.WEIGHT_DECAY, s.BIAS_LR_FACTOR, s.WEIGHT_DECAY_BIAS,
                          s.HEADS_LR_FACTOR)
    return build_optimizer(s.OPT, groups, s.BASE_LR, s.MOMENTUM, s.NESTEROV)


def clip_grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float, norm_type: float) -> float:
    return float(torch.nn.utils.clip_grad_norm_(list(params), max_norm, norm_type))


