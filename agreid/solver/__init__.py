"""Optimizers and learning-rate schedules."""
from agreid.solver.lr_scheduler import build_lr_scheduler, lr_factor, scheduler_from_config
from agreid.solver.optimizer import build_optimizer, clip_grad_norm, optimizer_from_config, param_groups

__all__ = ["build_lr_scheduler", "lr_factor", "scheduler_from_config", "build_optimizer",
           "clip_grad_norm", "optimizer_from_config", "param_groups"]
