"""Optimizers, learning-rate schedules and gradient clipping."""
from agreid.solver.grad_clip import (CLIP_TYPES, build_grad_clipper, clip_grad_norm_per_group_,
                                     clip_grad_norm_per_param_, grad_clipper_from_config)
from agreid.solver.lr_scheduler import (SCHEDULES, build_lr_scheduler, lr_factor, scheduler_from_config,
                                        timm_cosine_factor, warmup_cosine_epoch_factor)
from agreid.solver.optimizer import build_optimizer, clip_grad_norm, optimizer_from_config, param_groups
from agreid.solver.own_optimizer import OwnOptimizers

__all__ = ["CLIP_TYPES", "build_grad_clipper", "clip_grad_norm_per_group_", "clip_grad_norm_per_param_",
           "grad_clipper_from_config", "SCHEDULES", "build_lr_scheduler", "lr_factor", "scheduler_from_config",
           "timm_cosine_factor", "warmup_cosine_epoch_factor", "build_optimizer", "clip_grad_norm",
           "optimizer_from_config", "param_groups", "OwnOptimizers"]
