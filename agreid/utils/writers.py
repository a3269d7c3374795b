"""Metric writers: a console line with ETA, a JSON-lines file and TensorBoard scalars."""
from __future__ import annotations

import datetime
import json
import logging
import os
from agreid.utils.events import get_event_storage


class EventWriter:
    """Writes what is in the current EventStorage somewhere; ``write`` is called periodically."""

    def write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ConsoleWriter(EventWriter):
    """One log line per period: epoch/iteration, losses (median), lr, step and data time, ETA."""

    def __init__(self, max_iter: int, window: int = 20) -> None:
        self.max_iter = max_iter
        self.window = window
        self.logger = logging.getLogger("agreid.train")
        self._last_iter = -1

    def write(self) -> None:
        s = get_event_storage()
        if s.iter == self._last_iter:
            return
        self._last_iter = s.iter
        hist = s.histories()
        parts = [f"epoch: {s.epoch}", f"iter: {s.iter + 1}/{self.max_iter}"]
        eta = ""
        if "time" in hist:
            t = hist["time"].median(self.window)
            eta = str(datetime.timedelta(seconds=int(t * (self.max_iter - s.iter - 1))))
            parts.append(f"time: {t:.3f}")
        if "data_time" in hist:
            parts.append(f"data_time: {hist['data_time'].median(self.window):.3f}")
        for k, h in sorted(hist.items()):
            if "loss" in k:
                parts.append(f"{k}: {h.median(self.window):.4g}")
        if "lr" in hist:
            parts.append(f"lr: {hist['lr'].latest():.3g}")
        if eta:
            parts.insert(0, f"eta: {eta}")
        self.logger.info("  ".join(parts))


class JSONWriter(EventWriter):
    """Appends one JSON object per iteration that has new scalars to ``metrics.json``."""

    def __init__(self, path: str, window: int = 20) -> None:
        self.path = path
        self.window = window
        self._last_written: dict = {}

    def write(self) -> None:
        s = get_event_storage()
        by_iter: dict = {}
        for k, (v, it) in s.latest_with_smoothing_hint(self.window).items():
            if it > self._last_written.get(k, -1):
                by_iter.setdefault(it, {"iteration": it, "epoch": s.epoch})[k] = v
                self._last_written[k] = it
        if not by_iter:
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for it in sorted(by_iter):
                f.write(json.dumps(by_iter[it], sort_keys=True) + "\n")


class TensorboardWriter(EventWriter):
    """Scalars to TensorBoard event files in ``log_dir``; the event file is opened at the first write."""

    def __init__(self, log_dir: str, window: int = 20) -> None:
        self.log_dir = log_dir
        self.window = window
        self._last_written: dict = {}
        self._writer = None

    def write(self) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.log_dir)
        s = get_event_storage()
        for k, (v, it) in s.latest_with_smoothing_hint(self.window).items():
            if it > self._last_written.get(k, -1):
                self._writer.add_scalar(k, v, it)
                self._last_written[k] = it
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
