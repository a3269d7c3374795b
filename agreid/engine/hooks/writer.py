"""Flushes the metric writers periodically and at the end of every epoch."""
from __future__ import annotations

from typing import Sequence

from agreid.engine.train_loop import HookBase
from agreid.utils.writers import EventWriter


class PeriodicWriter(HookBase):
    """Calls every writer's ``write`` each ``period`` iterations, after each epoch, and closes them."""

    def __init__(self, writers: Sequence[EventWriter], period: int = 20) -> None:
        self.writers = list(writers)
        self.period = max(int(period), 1)

    def _write(self) -> None:
        for w in self.writers:
            w.write()

    def after_step(self) -> None:
        if (self.trainer.iter + 1) % self.period == 0:
            self._write()

    def after_epoch(self) -> None:
        self._write()

    def after_train(self) -> None:
        for w in self.writers:
            w.close()
