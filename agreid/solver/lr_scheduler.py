"""Per-iteration learning-rate schedule: warmup, then multi-step or cosine decay over epochs."""
from __future__ import annotations

import math
from typing import Sequence

import torch


def lr_factor(iteration: int, iters_per_epoch: int, max_epoch: int, sched: str, steps: Sequence[int],
              gamma: float, warmup_iters: int, warmup_factor: float, warmup_method: str,
              eta_min_ratio: float = 0.0) -> float:
    """Multiplier of the base LR at ``iteration`` (0-based); a pure function, so resume is exact.

    Multi-step milestones are in epochs; cosine decays per iteration from 1 to ``eta_min_ratio``.
    """
    epoch = iteration // max(iters_per_epoch, 1)
    if sched == "MultiStepLR":
        factor = gamma ** sum(1 for s in steps if epoch >= s)
    elif sched == "CosineAnnealingLR":
        total = max(max_epoch * iters_per_epoch, 1)
        t = min(iteration, total) / total
        factor = eta_min_ratio + (1 - eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    else:
        raise ValueError(f"SOLVER.SCHED '{sched}' is not MultiStepLR or CosineAnnealingLR")
    if iteration < warmup_iters:
        if warmup_method == "linear":
            alpha = iteration / warmup_iters
            factor *= warmup_factor * (1 - alpha) + alpha
        elif warmup_method == "constant":
            factor *= warmup_factor
        else:
            raise ValueError(f"SOLVER.WARMUP_METHOD '{warmup_method}' is not linear or constant")
    return factor


def build_lr_scheduler(optimizer: torch.optim.Optimizer, iters_per_epoch: int, max_epoch: int,
                       sched: str, steps: Sequence[int], gamma: float, warmup_iters: int,
                       warmup_factor: float, warmup_method: str, base_lr: float,
                       eta_min_lr: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepped once per iteration; its state is the iteration count."""
    lr_factor(0, iters_per_epoch, max_epoch, sched, steps, gamma, warmup_iters, warmup_factor,
              warmup_method)
    ratio = eta_min_lr / base_lr if base_lr > 0 else 0.0

    def fn(it: int) -> float:
        return lr_factor(it, iters_per_epoch, max_epoch, sched, tuple(steps), gamma, warmup_iters,
                         warmup_factor, warmup_method, ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def scheduler_from_config(cfg, optimizer: torch.optim.Optimizer,
                          iters_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    s = cfg.SOLVER
    return build_lr_scheduler(optimizer, iters_per_epoch, s.MAX_EPOCH, s.SCHED, list(s.STEPS), s.GAMMA,
                              s.WARMUP_ITERS, s.WARMUP_FACTOR, s.WARMUP_METHOD, s.BASE_LR, s.ETA_MIN_LR)
