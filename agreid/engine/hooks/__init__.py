"""Training hooks, one concept per module."""
from agreid.engine.hooks.buffer_sync import BufferSync
from agreid.engine.hooks.checkpointing import BestCheckpointer, PeriodicCheckpointer
from agreid.engine.hooks.evaluation import EvalHook
from agreid.engine.hooks.lr_scheduler import LRScheduler
from agreid.engine.hooks.model_epoch import ModelEpochEnd
from agreid.engine.hooks.timer import IterationTimer, ProgressBar
from agreid.engine.hooks.writer import PeriodicWriter

__all__ = ["BufferSync", "BestCheckpointer", "PeriodicCheckpointer", "EvalHook", "LRScheduler", "ModelEpochEnd",
           "IterationTimer", "ProgressBar", "PeriodicWriter"]
