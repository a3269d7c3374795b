"""Periodic evaluation during training; its results feed the best-model checkpointer."""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

from agreid.engine.train_loop import HookBase
from agreid.utils import comm
from agreid.utils.events import get_event_storage

Results = Mapping[str, Mapping[str, float]]


class EvalHook(HookBase):
    """Runs ``eval_function`` every ``period`` epochs and after the last epoch; keeps ``latest``.

    ``eval_function`` returns ``{protocol: {metric: value}}`` on the main process ({} elsewhere);
    each value is stored as the scalar ``<protocol>/<metric>``.
    """

    def __init__(self, period: int, eval_function: Callable[[], Results]) -> None:
        self.period = int(period)
        self.eval_function = eval_function
        self.latest: Optional[Dict[str, Dict[str, float]]] = None

    def after_epoch(self) -> None:
        epoch = self.trainer.epoch + 1
        last = epoch == self.trainer.max_epoch
        if not (last or (self.period > 0 and epoch % self.period == 0)):
            return
        results = self.eval_function() or {}
        self.latest = {k: dict(v) for k, v in results.items()}
        storage = get_event_storage()
        for proto, metrics in self.latest.items():
            for name, value in metrics.items():
                storage.put_scalar(f"{proto}/{name}", value, smoothing_hint=False)
        comm.synchronize()
        self.latest = comm.broadcast_object(self.latest)
