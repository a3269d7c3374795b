"""Periodic, final and best-model checkpoints written after evaluation."""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

from agreid.engine.hooks.evaluation import EvalHook
from agreid.engine.train_loop import HookBase
from agreid.utils.checkpoint import Checkpointer

logger = logging.getLogger("agreid.engine")


class PeriodicCheckpointer(HookBase):
    """Saves the full training state every ``period`` epochs as ``<prefix>XXXX`` and ``<prefix>final`` at the end.

    ``state_fn`` supplies everything beyond the model (optimizer, schedule, RNG, hook states, epoch). The prefix
    is ``model_``, or ``model_<stage>_`` in the earlier stages of a multi-stage method.
    """

    def __init__(self, checkpointer: Checkpointer, period: int,
                 state_fn: Callable[[], Dict[str, Any]], prefix: str = "model_") -> None:
        self.checkpointer = checkpointer
        self.prefix = prefix
        self.period = int(period)
        self.state_fn = state_fn
        self._saved_epoch = -1

    def after_epoch(self) -> None:
        self._save_due(self.trainer.epoch)

    def after_train(self) -> None:
        """If an earlier ``after_epoch`` hook (an evaluation) failed after the epoch's last step, the
        epoch's checkpoint was not written: write it now, so trained weights are never lost to it."""
        t = self.trainer
        done = t.iters_per_epoch > 0 and t.iter > t.start_epoch * t.iters_per_epoch \
            and t.iter % t.iters_per_epoch == 0
        epoch = t.iter // t.iters_per_epoch - 1 if t.iters_per_epoch else -1
        if done and epoch > self._saved_epoch and epoch == t.epoch:
            logger.warning(f"Epoch {epoch + 1} ended with an error after its last step; saving its checkpoint")
            self._save_due(epoch)

    def _save_due(self, epoch_index: int) -> None:
        epoch = epoch_index + 1
        if epoch == self.trainer.max_epoch:
            self.checkpointer.save(f"{self.prefix}final", **self.state_fn())
        elif self.period > 0 and epoch % self.period == 0:
            self.checkpointer.save(f"{self.prefix}{epoch:04d}", **self.state_fn())
        self._saved_epoch = epoch_index


class BestCheckpointer(HookBase):
    """After every evaluation, saves ``model_best`` when ``metric`` (averaged over protocols) improves.

    ``metric@feature`` (e.g. ``Rank-1@bn``) averages only the results of that named feature (the
    ``protocol@feature`` rows of a model returning several features). The best value is part of the
    resumable state, so a resumed run does not overwrite a better model.
    """

    def __init__(self, eval_hook: EvalHook, checkpointer: Checkpointer, metric: str = "metric",
                 mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be max or min, got {mode}")
        self.eval_hook = eval_hook
        self.checkpointer = checkpointer
        self.metric = metric
        self.mode = mode
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self._seen = None

    def after_epoch(self) -> None:
        results = self.eval_hook.latest
        if not results or results is self._seen:
            return
        self._seen = results
        metric, _, feature = self.metric.partition("@")
        values = [m[metric] for name, m in results.items()
                  if metric in m and (not feature or str(name).endswith("@" + feature))]
        if not values:
            logger.warning(f"Best checkpoint: no '{self.metric}' in evaluation results")
            return
        value = sum(values) / len(values)
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch = value, self.trainer.epoch
            self.checkpointer.save("model_best", mark_last=False, epoch=self.trainer.epoch, best_metric=value)
            logger.info(f"New best {self.metric} = {value:.2f} at epoch {self.trainer.epoch}")

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
