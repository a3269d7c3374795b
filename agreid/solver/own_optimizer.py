"""Parameters stepped by their own plain SGD, outside the main optimizer and its schedule (the center loss).

A module opts in with an attribute ``own_optimizer = {"lr": float, "grad_scale": float[, "momentum": float]}``:
ReID-Survey's AGW optimises the centres of its center loss with ``SGD(lr=CENTER_LR)`` after multiplying their
gradients by ``1 / CENTER_LOSS_WEIGHT``, at a constant learning rate. The main optimizer never sees them.
"""
from __future__ import annotations

from typing import Any, Dict, List, Set, Tuple

import torch
from torch import nn


class OwnOptimizers:
    """One SGD per module carrying ``own_optimizer``; ``step`` scales the gradients first, then steps."""

    def __init__(self, model: nn.Module) -> None:
        self.entries: List[Tuple[str, List[nn.Parameter], torch.optim.Optimizer, float]] = []
        for name, module in model.named_modules():
            spec = getattr(module, "own_optimizer", None)
            if not spec:
                continue
            params = [p for p in module.parameters() if p.requires_grad]
            if not params:
                continue
            opt = torch.optim.SGD(params, lr=float(spec["lr"]), momentum=float(spec.get("momentum", 0.0)))
            self.entries.append((name, params, opt, float(spec.get("grad_scale", 1.0))))

    def __len__(self) -> int:
        return len(self.entries)

    def param_ids(self) -> Set[int]:
        return {id(p) for _, params, _, _ in self.entries for p in params}

    def zero_grad(self) -> None:
        for _, _, opt, _ in self.entries:
            opt.zero_grad(set_to_none=True)

    def step(self, inv_loss_scale: float = 1.0) -> None:
        """Multiply each gradient by the module's ``grad_scale`` (and ``inv_loss_scale`` under fp16 AMP), then
        step; a step whose gradients are not finite is skipped, as the GradScaler skips the main one."""
        for _, params, opt, scale in self.entries:
            grads = [p.grad for p in params if p.grad is not None]
            if not grads:
                continue
            torch._foreach_mul_(grads, scale * inv_loss_scale)
            if inv_loss_scale != 1.0 and not all(torch.isfinite(g).all() for g in grads):
                continue
            opt.step()

    def state_dict(self) -> Dict[str, Any]:
        return {name: opt.state_dict() for name, _, opt, _ in self.entries}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for name, _, opt, _ in self.entries:
            if name in state:
                opt.load_state_dict(state[name])
