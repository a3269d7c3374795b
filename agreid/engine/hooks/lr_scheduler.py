"""Steps the per-iteration learning-rate schedule and records the learning rate."""
from __future__ import annotations

import torch

from agreid.engine.train_loop import HookBase
from agreid.utils.events import get_event_storage


class LRScheduler(HookBase):
    """After each step: record the LR used by that step, then advance the schedule one iteration.

    The recorded ``lr`` is that of the group named ``base`` (the weights at BASE_LR), else the largest.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler) -> None:
        self.optimizer = optimizer
        self.scheduler = scheduler
        groups = optimizer.param_groups
        self._group = next((g for g in groups if str(g.get("name", "")).split("+")[0] == "base"),
                           max(groups, key=lambda g: g["lr"]))

    def after_step(self) -> None:
        get_event_storage().put_scalar("lr", self._group["lr"], smoothing_hint=False)
        self.scheduler.step()
