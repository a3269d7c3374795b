"""Average BatchNorm running statistics over ranks at the end of every epoch."""
from __future__ import annotations

import torch
import torch.distributed as dist

from agreid.engine.train_loop import HookBase
from agreid.utils import comm
from agreid.utils.checkpoint import unwrap_model


def average_buffers(model: torch.nn.Module) -> None:
    """All-reduce the mean of every floating-point buffer so all ranks hold the same model.

    DDP runs with ``broadcast_buffers=False`` (each rank's BN sees only its own identities); without
    this, ranks would evaluate and checkpoint different running statistics.
    """
    if comm.get_world_size() == 1:
        return
    for buf in unwrap_model(model).buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(comm.get_world_size())


class BufferSync(HookBase):
    """Runs :func:`average_buffers` before evaluation and checkpointing read the model."""

    def after_epoch(self) -> None:
        average_buffers(self.trainer.model)
