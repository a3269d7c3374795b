"""Steps the per-iteration learning-rate schedule and records the learning rate."""
from __future__ import annotations

import torch

from agreid.engine.train_loop import HookBase
from agreid.utils.events import get_event_storage


class LRScheduler(HookBase):
    """After each step: record the LR used by that step, then advance the schedule one iteration."""

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler) -> None:
        self.optimizer = optimizer
        self.scheduler = scheduler

    def after_step(self) -> None:
        lr = max(g["lr"] for g in self.optimizer.param_groups)
        get_event_storage().put_scalar("lr", lr, smoothing_hint=False)
        self.scheduler.step()
