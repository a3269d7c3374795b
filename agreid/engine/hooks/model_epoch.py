"""Lets model parts update per-epoch state (online label smoothing's soft targets) before it is synced and saved."""
from __future__ import annotations

from agreid.engine.train_loop import HookBase
from agreid.utils.checkpoint import unwrap_model


class ModelEpochEnd(HookBase):
    """After each epoch, calls ``on_epoch_end(epoch)`` on every module of the model that defines it.

    Registered before :class:`BufferSync` and the checkpointers, so state kept in buffers is averaged over
    ranks and lands in the epoch's checkpoint, which makes ``--resume`` exact.
    """

    def after_epoch(self) -> None:
        for module in unwrap_model(self.trainer.model).modules():
            fn = getattr(module, "on_epoch_end", None)
            if callable(fn):
                fn(self.trainer.epoch)
