"""The evaluator interface and the loop that feeds a test loader through a model into an evaluator."""
from __future__ import annotations

import contextlib
import datetime
import logging
import time
from typing import Any, Dict, Iterable, Iterator, Mapping

import torch
from torch import nn
from tqdm import tqdm

from agreid.utils import comm

logger = logging.getLogger(__name__)

WARMUP_BATCHES = 5


class DatasetEvaluator:
    """Accumulates model outputs batch by batch and turns them into metrics.

    ``evaluate`` returns the metrics dict on the main process and ``{}`` on the other ranks.
    """

    def reset(self) -> None:
        """Forget everything processed so far; called before each inference pass."""

    def process(self, batch: Mapping[str, Any], outputs: Any) -> None:
        """Record the model ``outputs`` for one loader ``batch``."""

    def evaluate(self) -> Dict[str, Any]:
        """Compute metrics from everything processed (collective: every rank must call it)."""
        return {}


@contextlib.contextmanager
def inference_context(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the block and restore each submodule's previous mode afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.train(training)


def _flipped(batch: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(batch)
    out["images"] = torch.flip(batch["images"], dims=[-1])
    return out


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def average_outputs(a: Any, b: Any) -> Any:
    """The mean of two model outputs: tensors, or dicts of named feature tensors (one mean per name)."""
    if isinstance(a, Mapping):
        return {name: (a[name] + b[name]) / 2.0 for name in a}
    return (a + b) / 2.0


def inference_on_dataset(model: nn.Module, data_loader: Iterable[Mapping[str, Any]],
                         evaluator: DatasetEvaluator, flip_test: bool = False,
                         desc: str = "") -> Dict[str, Any]:
    """Run ``model(batch)`` over ``data_loader`` in eval mode without gradients and return ``evaluator.evaluate()``.

    With ``flip_test`` the features of each batch and of a width-flipped copy of ``batch['images']``
    are averaged (each named feature on its own when the model returns a dict of them); the loader's tensors
    are never modified. The previous train/eval mode is restored.
    """
    evaluator.reset()
    total = len(data_loader) if hasattr(data_loader, "__len__") else None
    main = comm.is_main_process()
    compute_time = 0.0
    timed_batches = 0
    start = time.perf_counter()
    with inference_context(model), torch.no_grad():
        for idx, batch in enumerate(tqdm(data_loader, total=total, desc=desc or "inference",
                                         disable=None if main else True, dynamic_ncols=True, leave=False)):
            if idx == WARMUP_BATCHES:
                start, compute_time, timed_batches = time.perf_counter(), 0.0, 0
            tic = time.perf_counter()
            mirror = _flipped(batch) if flip_test else None
            outputs = model(batch)
            if mirror is not None:
                outputs = average_outputs(outputs, model(mirror))
            _sync()
            compute_time += time.perf_counter() - tic
            timed_batches += 1
            evaluator.process(batch, outputs)
    wall = time.perf_counter() - start
    per_batch = wall / max(timed_batches, 1)
    logger.info("%sinference: %s for %d batches after warm-up (%.4f s/batch wall, %.4f s/batch compute) "
                "on %d device(s)", f"{desc} " if desc else "",
                datetime.timedelta(seconds=int(wall)), timed_batches, per_batch,
                compute_time / max(timed_batches, 1), comm.get_world_size())
    return evaluator.evaluate()
