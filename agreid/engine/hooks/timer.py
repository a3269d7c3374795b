"""Step timing and the per-epoch progress bar."""
from __future__ import annotations

import logging
import time
from typing import Optional

from tqdm import tqdm

from agreid.engine.train_loop import HookBase
from agreid.utils.events import get_event_storage

logger = logging.getLogger("agreid.engine")


class IterationTimer(HookBase):
    """Puts the wall time of each step as ``time`` and logs the total training time at the end."""

    def __init__(self) -> None:
        self._step_start = 0.0
        self._train_start = 0.0

    def before_train(self) -> None:
        self._train_start = time.perf_counter()

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        get_event_storage().put_scalar("time", time.perf_counter() - self._step_start)

    def after_train(self) -> None:
        total = time.perf_counter() - self._train_start
        logger.info(f"Total training time: {total:.1f} s")


class ProgressBar(HookBase):
    """A tqdm bar per epoch with the smoothed total loss; shown only on an interactive rank-0 console."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar: Optional[tqdm] = None

    def before_epoch(self) -> None:
        if self.enabled:
            self._bar = tqdm(total=self.trainer.iters_per_epoch, desc=f"epoch {self.trainer.epoch}",
                             leave=False, disable=None, dynamic_ncols=True)

    def after_step(self) -> None:
        if self._bar is not None:
            hist = get_event_storage().histories()
            if "total_loss" in hist:
                self._bar.set_postfix(loss=f"{hist['total_loss'].median(20):.3f}")
            self._bar.update(1)

    def after_epoch(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    after_train = after_epoch
