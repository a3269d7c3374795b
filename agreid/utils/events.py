"""EventStorage: the scalars a training run produces, read by the metric writers."""
from __future__ import annotations

from collections import defaultdict, deque
from typing import Deque, Dict, List, Optional, Tuple

_STACK: List["EventStorage"] = []


def get_event_storage() -> "EventStorage":
    if not _STACK:
        raise RuntimeError("get_event_storage() called outside an EventStorage context")
    return _STACK[-1]


class HistoryBuffer:
    """Recent values of one scalar with (iteration, value) pairs, plus a running global average."""

    def __init__(self, max_length: int = 1000) -> None:
        self._data: Deque[Tuple[float, int]] = deque(maxlen=max_length)
        self._sum = 0.0
        self._count = 0

    def update(self, value: float, iteration: int) -> None:
        self._data.append((value, iteration))
        self._sum += value
        self._count += 1

    def latest(self) -> float:
        return self._data[-1][0]

    def median(self, window: int) -> float:
        vals = sorted(v for v, _ in list(self._data)[-window:])
        n = len(vals)
        return vals[n // 2] if n % 2 else 0.5 * (vals[n // 2 - 1] + vals[n // 2])

    def avg(self, window: int) -> float:
        vals = [v for v, _ in list(self._data)[-window:]]
        return sum(vals) / len(vals)

    def global_avg(self) -> float:
        return self._sum / max(self._count, 1)


class EventStorage:
    """Per-run scalar store; ``put_scalar`` during a step, writers read ``latest()`` and ``history()``."""

    def __init__(self, start_iter: int = 0) -> None:
        self.iter = start_iter
        self.epoch = 0
        self._history: Dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._latest: Dict[str, Tuple[float, int]] = {}
        self._smoothing: Dict[str, bool] = {}

    def put_scalar(self, name: str, value: float, smoothing_hint: bool = True,
                   iteration: Optional[int] = None) -> None:
        """Record ``value`` for the current iteration, or for ``iteration`` (metrics that arrive late)."""
        value = float(value)
        it = self.iter if iteration is None else int(iteration)
        self._history[name].update(value, it)
        self._latest[name] = (value, it)
        self._smoothing.setdefault(name, smoothing_hint)

    def put_scalars(self, smoothing_hint: bool = True, iteration: Optional[int] = None, **kwargs: float) -> None:
        for k, v in kwargs.items():
            self.put_scalar(k, v, smoothing_hint, iteration)

    def history(self, name: str) -> HistoryBuffer:
        if name not in self._history:
            raise KeyError(f"No scalar named {name} in EventStorage")
        return self._history[name]

    def histories(self) -> Dict[str, HistoryBuffer]:
        return self._history

    def latest(self) -> Dict[str, Tuple[float, int]]:
        return dict(self._latest)

    def latest_with_smoothing_hint(self, window: int = 20) -> Dict[str, Tuple[float, int]]:
        """Latest values, with hinted scalars replaced by their median over ``window``."""
        return {k: (self._history[k].median(window) if self._smoothing[k] else v, it)
                for k, (v, it) in self._latest.items()}

    def clear_latest(self) -> None:
        self._latest = {}

    def __enter__(self) -> "EventStorage":
        _STACK.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _STACK.pop()



def current_storage() -> "EventStorage | None":
    """The innermost open EventStorage, or None outside training."""
    return _STACK[-1] if _STACK else None
