"""The training loop skeleton: hooks, an epoch × iteration loop, and one optimisation step.

Call nesting (every hook sees the same order)::

    hook.before_train()
    for epoch in range(start_epoch, max_epoch):
        hook.before_epoch()
        for _ in range(iters_per_epoch):
            hook.before_step()      # keep cheap
            trainer.run_step()
            hook.after_step()       # real per-step work goes here
        hook.after_epoch()          # evaluation, checkpoints
    hook.after_train()              # also runs when training raised
"""
from __future__ import annotations

import logging
import time
import weakref
from contextlib import nullcontext
from functools import partial
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Union

import torch
from torch import nn

from agreid.engine.step_metrics import StepMetrics
from agreid.utils.errors import UserError, format_user_error
from agreid.utils.events import EventStorage

logger = logging.getLogger("agreid.engine")


class HookBase:
    """Something run at fixed points of training; ``self.trainer`` is a weak proxy set on registration.

    A hook that has state to survive ``--resume`` defines ``state_dict``/``load_state_dict``.
    """

    trainer: Any = None

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass


class TrainerBase:
    """Runs the loop in the module docstring and keeps ``epoch``, ``iter`` and the EventStorage in sync."""

    def __init__(self) -> None:
        self._hooks: List[HookBase] = []
        self.epoch = 0
        self.iter = 0
        self.start_epoch = 0
        self.max_epoch = 0
        self.iters_per_epoch = 0
        self.storage: Optional[EventStorage] = None

    def register_hooks(self, hooks: Iterable[Optional[HookBase]]) -> None:
        for h in hooks:
            if h is None:
                continue
            h.trainer = weakref.proxy(self)
            self._hooks.append(h)

    @property
    def hooks(self) -> List[HookBase]:
        return list(self._hooks)

    @property
    def max_iter(self) -> int:
        return self.max_epoch * self.iters_per_epoch

    def train(self, start_epoch: int, max_epoch: int, iters_per_epoch: int) -> None:
        self.start_epoch, self.max_epoch, self.iters_per_epoch = start_epoch, max_epoch, iters_per_epoch
        self.iter = start_epoch * iters_per_epoch
        logger.info(f"Starting training from epoch {start_epoch} ({iters_per_epoch} iterations per epoch)")
        with EventStorage(self.iter) as self.storage:
            try:
                self._call("before_train")
                for self.epoch in range(start_epoch, max_epoch):
                    self.storage.epoch = self.epoch
                    self.begin_epoch(self.epoch)
                    self._call("before_epoch")
                    for _ in range(iters_per_epoch):
                        self.storage.iter = self.iter
                        self._call("before_step")
                        self.run_step()
                        self._call("after_step")
                        self.iter += 1
                    self._call("after_epoch")
            except UserError as e:
                logger.error(f"Training stopped: {format_user_error(e)}")
                raise
            except Exception:
                logger.exception("Exception during training:")
                raise
            finally:
                self._call("after_train")

    def _call(self, stage: str) -> None:
        for h in self._hooks:
            getattr(h, stage)()

    def begin_epoch(self, epoch: int) -> None:
        """Prepare per-epoch state (e.g. reseed the sampler) before the hooks' ``before_epoch``."""

    def run_step(self) -> None:
        raise NotImplementedError

    def hooks_state_dict(self) -> Dict[str, Any]:
        return {type(h).__name__: h.state_dict() for h in self._hooks if hasattr(h, "state_dict")}

    def load_hooks_state_dict(self, state: Mapping[str, Any]) -> None:
        for h in self._hooks:
            name = type(h).__name__
            if hasattr(h, "load_state_dict") and name in state:
                h.load_state_dict(state[name])


class SimpleTrainer(TrainerBase):
    """One step = next batch, loss dict from the model, backward, optional clipping, optimizer step.

    Mixed precision (fp16 with a GradScaler, or bf16) is used only on CUDA. The data iterator is
    restarted at every epoch so that the batch sampler can reseed from the epoch number. The step
    never waits for the device: losses reach the EventStorage through :class:`StepMetrics`, read
    back every ``metrics_period`` iterations and at each epoch end (at once on the CPU).

    ``clip_grad`` is a function clipping the gradients of the parameters it is given (see
    :func:`agreid.solver.build_grad_clipper`), or for backward compatibility a dict with
    ``max_norm`` and ``norm_type`` for whole-model norm clipping.
    """

    def __init__(self, model: nn.Module, data_loader: Iterable, optimizer: torch.optim.Optimizer,
                 amp_dtype: Optional[torch.dtype] = None,
                 clip_grad: Union[None, Mapping[str, float], Callable[[List[nn.Parameter]], Any]] = None,
                 device: Optional[torch.device] = None, metrics_period: int = 20) -> None:
        super().__init__()
        model.train()
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.device = device or torch.device("cpu")
        self.amp_dtype = amp_dtype if self.device.type == "cuda" else None
        self.grad_scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        if isinstance(clip_grad, Mapping):
            max_norm, norm_type = float(clip_grad["max_norm"]), float(clip_grad["norm_type"])
            clip_grad = partial(torch.nn.utils.clip_grad_norm_, max_norm=max_norm, norm_type=norm_type,
                                foreach=True)
        self.clip_grad = clip_grad
        self.metrics_period = max(int(metrics_period), 1)
        self.metrics = StepMetrics()
        self.own_optimizers = None  # OwnOptimizers stepped after the main optimizer (center loss), if any
        self._params = [p for g in optimizer.param_groups for p in g["params"]] if optimizer is not None else []
        self._data_iter = None

    def begin_epoch(self, epoch: int) -> None:
        sampler = getattr(self.data_loader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        self._data_iter = iter(self.data_loader)

    def _to_device(self, batch: Mapping[str, Any]) -> Dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()}

    def run_step(self) -> None:
        if self._data_iter is None:
            self.begin_epoch(self.epoch)
        start = time.perf_counter()
        batch = self._to_device(next(self._data_iter))
        data_time = time.perf_counter() - start
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
                    else nullcontext())
        with autocast:
            loss_dict = self.model(batch)
        losses = sum(loss_dict.values())
        self.optimizer.zero_grad(set_to_none=True)
        if self.own_optimizers:
            self.own_optimizers.zero_grad()
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses).backward()
            if self.clip_grad:  # clipping needs true gradients; otherwise the scaler unscales inside step()
                self.grad_scaler.unscale_(self.optimizer)
        else:
            losses.backward()
        if self.clip_grad:
            self.clip_grad(self._params)
        self.metrics.push(self.iter, loss_dict, data_time)
        flush = (self.iter + 1) % self.metrics_period == 0 or (self.iter + 1) % max(self.iters_per_epoch, 1) == 0
        self.metrics.drain(wait=flush)
        inv_scale = 1.0
        if self.grad_scaler is not None:
            if self.own_optimizers:
                inv_scale = 1.0 / float(self.grad_scaler.get_scale())
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        if self.own_optimizers:
            self.own_optimizers.step(inv_scale)

    def state_dict(self) -> Dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict()}
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        if self.own_optimizers:
            state["own_optimizers"] = self.own_optimizers.state_dict()
        return state
