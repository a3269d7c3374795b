"""Per-step losses kept on the device and read back without stalling the step: exact, but not synchronous.

Reading a CUDA loss with ``float()`` every step makes the host wait for the GPU, so the next step cannot
be queued while the current one runs. Here each step's losses are stacked into one tensor and copied to
pinned host memory with a non-blocking copy and an event; they are read when the copy is done, at the
latest at the next flush (every LOG_PERIOD iterations and at the end of each epoch). On the CPU there
is nothing to wait for and each step is read at once. Under DDP the values are averaged over ranks in
one all-reduce per flush, so every rank logs identical numbers.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Deque, Dict, List, Mapping, Optional, Tuple

import torch

from agreid.utils import comm
from agreid.utils.events import get_event_storage

_Entry = Tuple[int, List[str], torch.Tensor, Optional[torch.cuda.Event], float]


class StepMetrics:
    """Collects ``{"loss_*": tensor}`` per iteration; raises ``FloatingPointError`` on a non-finite loss."""

    def __init__(self) -> None:
        self._pending: Deque[_Entry] = deque()

    def push(self, iteration: int, loss_dict: Mapping[str, torch.Tensor], data_time: float) -> None:
        """Queue this step's losses; the copy to the host starts now and does not block."""
        names = list(loss_dict)
        values = torch.stack([v.detach().float().reshape(()) for v in loss_dict.values()])
        event = None
        if values.is_cuda:
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            values = host
        self._pending.append((iteration, names, values, event, data_time))

    def drain(self, wait: bool) -> None:
        """Store every queued step whose values have arrived (all of them when ``wait``) in the EventStorage.

        With several processes only a waiting drain stores anything, so all ranks reduce the same steps.
        """
        if comm.get_world_size() > 1:
            if wait:
                self._store(self._take(len(self._pending)), reduce=True)
            return
        ready = 0
        for _, _, _, event, _ in self._pending:
            if event is not None and not wait and not event.query():
                break
            ready += 1
        self._store(self._take(ready), reduce=False)

    def _take(self, n: int) -> List[_Entry]:
        return [self._pending.popleft() for _ in range(n)]

    def _store(self, entries: List[_Entry], reduce: bool) -> None:
        if not entries:
            return
        for _, _, _, event, _ in entries:
            if event is not None:
                event.synchronize()
        rows = [torch.cat([vals.cpu().double(), torch.tensor([dt], dtype=torch.float64)])
                for _, _, vals, _, dt in entries]
        table = torch.stack(rows) if len({len(r) for r in rows}) == 1 else None
        if reduce:
            if table is None:
                raise RuntimeError("Loss names changed between steps; cannot average them over ranks")
            table = comm.all_reduce_mean(table)
        storage = get_event_storage()
        for i, (it, names, vals, _, _) in enumerate(entries):
            row = (table[i] if table is not None else rows[i]).tolist()
            values: Dict[str, float] = dict(zip(names, row[:-1]))
            total = sum(values.values())
            if not math.isfinite(total):
                self._pending.clear()
                raise FloatingPointError(f"Loss became infinite or NaN at iteration {it}: {values}")
            storage.put_scalar("total_loss", total, iteration=it)
            storage.put_scalars(iteration=it, data_time=row[-1], **values)
