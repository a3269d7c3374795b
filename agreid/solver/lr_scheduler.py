"""Learning-rate schedules, each a pure function of the iteration (so ``--resume`` is exact).

The scheduler is a ``LambdaLR`` stepped once per iteration by the ``LRScheduler`` hook; it multiplies
each parameter group's initial LR by a factor. ``SOLVER.SCHED`` selects the schedule:

``MultiStepLR``
    agreid's warmup (per iteration, ``WARMUP_ITERS`` long) times ``GAMMA`` at each epoch in ``STEPS``.
``CosineAnnealingLR``
    agreid's warmup times a cosine decaying **per iteration** from 1 to ``ETA_MIN_LR / BASE_LR``
    over ``MAX_EPOCH`` epochs.
``WarmupCosineEpochLR``
    fast-reid's (SeCap, VDT) pair of schedulers as its ``LRScheduler`` hook drives them, see
    :func:`warmup_cosine_epoch_factor`.
``TimmCosineLR``
    TransReID's timm ``CosineLRScheduler``, stepped once per epoch, see :func:`timm_cosine_factor`.
``WarmupMultiStepEpochLR``
    warmup and multi-step decay both counted in epochs, constant within an epoch (AGW's two references,
    CLIP-ReID stage 2, TF-CLIP, SVPR), see :func:`warmup_multistep_epoch_factor`.

In the last two, ``ETA_MIN_LR`` (and TimmCosineLR's warmup start ``WARMUP_FACTOR x BASE_LR``) are
absolute learning rates shared by every parameter group, as in torch's ``CosineAnnealingLR`` and
timm, so the factor of each group is computed from that group's own initial LR: a bias group with
``BIAS_LR_FACTOR 2`` decays to ``ETA_MIN_LR``, not to twice it. The first two keep agreid's
behaviour (one factor for all groups, ``ETA_MIN_LR / BASE_LR`` of each group's LR).
"""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import List, Sequence

import torch

SCHEDULES = ("MultiStepLR", "CosineAnnealingLR", "WarmupCosineEpochLR", "TimmCosineLR", "WarmupMultiStepEpochLR")
EPOCH_WARMUP_SCHEDULES = ("TimmCosineLR", "WarmupMultiStepEpochLR")
WARMUP_METHODS = ("linear", "constant", "exp")
# TransReID's solver/scheduler_factory.py builds timm's CosineLRScheduler with t_mul 1, decay_rate 0.1,
# cycle_limit 1 and no warmup prefix, and calls ``scheduler.step(epoch)`` before each epoch with the
# 1-based epoch number (processor/processor.py), so agreid's 0-based epoch e runs at timm's t = e + 1.
TIMM_EPOCH_OFFSET = 1
TRANSREID_CYCLE = {"cycle_mul": 1.0, "cycle_decay": 0.1, "cycle_limit": 1, "warmup_prefix": False}


def warmup_multiplier(iteration: int, warmup_iters: int, warmup_factor: float, warmup_method: str) -> float:
    """fast-reid's / agreid's per-iteration warmup multiplier (1 from ``warmup_iters`` on).

    linear: ``f (1 - a) + a`` with ``a = iteration / warmup_iters``; constant: ``f``; exp:
    ``f ** (1 - a)`` (fast-reid's ``_get_warmup_factor_at_epoch``).
    """
    if iteration >= warmup_iters:
        return 1.0
    alpha = iteration / warmup_iters
    if warmup_method == "linear":
        return warmup_factor * (1 - alpha) + alpha
    if warmup_method == "constant":
        return warmup_factor
    if warmup_method == "exp":
        return warmup_factor ** (1 - alpha)
    raise ValueError(f"SOLVER.WARMUP_METHOD '{warmup_method}' is not one of {WARMUP_METHODS}")


def warmup_cosine_epoch_factor(iteration: int, iters_per_epoch: int, max_epoch: int, warmup_iters: int,
                               warmup_factor: float, warmup_method: str, eta_min_ratio: float) -> float:
    """fast-reid's ``WarmupLR`` (per iteration) + ``CosineAnnealingLR`` (per epoch), as SeCap / VDT run.

    Reference (wangshining681/SeCap-AGPReID ``fastreid/solver/build.py``, ``lr_scheduler.py``,
    ``engine/hooks.py:LRScheduler``, ``engine/train_loop.py``): with ``E_w = ceil(W / ipe)`` for
    ``W = WARMUP_ITERS`` and ipe iterations per epoch, the cosine has ``T_max = MAX_EPOCH - E_w``
    (``DELAY_EPOCHS`` 0). The hook steps the warmup after iteration i while ``i + 1 <= W`` and steps
    the cosine after each epoch e whose last iteration satisfies ``(e + 1) * ipe + 1 > W``.
    Hence:

    - iterations ``i < W``: ``warmup_multiplier(i)`` (the cosine has not moved; it is 1);
    - later iterations of the epoch in which warmup ends (epoch ``E_w - 1``, present only when ipe
      does not divide W): exactly 1, i.e. BASE_LR;
    - epoch ``e >= E_w``: cosine step ``k = e - E_w + 1`` (``k = e`` when ``W == 0``):
      ``r + (1 - r) (1 + cos(pi k / T_max)) / 2`` with ``r = ETA_MIN_LR / lr``. The last epoch
      (``MAX_EPOCH - 1``) thus trains at ETA_MIN_LR exactly when ``W > 0``; with ``W == 0`` the
      schedule is the plain per-epoch cosine and stops one step short of it.

    torch evaluates the cosine recursively from the group's current LR; as the warmup always ends
    at factor 1 this equals the closed form above (to rounding). Not reproduced: under AMP the
    fast-reid hook skips the warmup step whenever the GradScaler's scale changed in that iteration
    (overflow or growth), which leaves the end of warmup slightly below BASE_LR and scales the
    whole cosine by that; agreid keeps the schedule a function of the iteration alone.
    """
    ipe = max(iters_per_epoch, 1)
    warmup_epochs = math.ceil(warmup_iters / ipe)
    t_max = max_epoch - warmup_epochs
    if t_max <= 0:
        raise ValueError(f"WarmupCosineEpochLR: SOLVER.WARMUP_ITERS={warmup_iters} covers {warmup_epochs} "
                         f"epoch(s) of {ipe} iterations, leaving no epoch of the {max_epoch} for the cosine")
    if iteration < warmup_iters:
        return warmup_multiplier(iteration, warmup_iters, warmup_factor, warmup_method)
    epoch = iteration // ipe
    k = min(max(epoch - max(warmup_epochs - 1, 0), 0), t_max)
    return eta_min_ratio + (1 - eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * k / t_max))


def timm_cosine_factor(t: int, t_initial: int, warmup_t: int, warmup_init_ratio: float, min_ratio: float,
                       cycle_mul: float = 1.0, cycle_decay: float = 1.0, cycle_limit: int = 1,
                       warmup_prefix: bool = False, k_decay: float = 1.0) -> float:
    """timm ``CosineLRScheduler._get_lr(t)`` divided by the group's base LR.

    ``warmup_init_ratio`` = warmup_lr_init / base, ``min_ratio`` = lr_min / base (timm's two values
    are absolute). timm's warmup convention: ``t < warmup_t`` gives ``init + t (base - init) / warmup_t``,
    so t = 0 is the initial value and the warmup never reaches base; at ``t = warmup_t`` the cosine
    takes over at its own ``t`` (no restart at 0 unless ``warmup_prefix``). After ``cycle_limit``
    cycles the value is lr_min. Formula of timm 1.0 (lr_min not decayed per cycle; TransReID's
    2020 copy decays it, which differs only for cycles > 0, never reached with cycle_limit 1).
    """
    if t < warmup_t:
        return warmup_init_ratio + t * (1.0 - warmup_init_ratio) / warmup_t
    if warmup_prefix:
        t = t - warmup_t
    if cycle_mul != 1:
        i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
        t_i = cycle_mul ** i * t_initial
        t_curr = t - (1 - cycle_mul ** i) / (1 - cycle_mul) * t_initial
    else:
        i = t // t_initial
        t_i = t_initial
        t_curr = t - t_initial * i
    if i >= cycle_limit:
        return min_ratio
    gamma = cycle_decay ** i
    return min_ratio + 0.5 * (gamma - min_ratio) * (1 + math.cos(math.pi * t_curr ** k_decay / t_i ** k_decay))


def warmup_multistep_epoch_factor(epoch: int, steps: Sequence[int], gamma: float, warmup_epochs: int,
                                  warmup_factor: float, warmup_method: str, epoch_offset: int = 0) -> float:
    """The ``WarmupMultiStepLR`` of ReID-Survey / CLIP-ReID (``solver/lr_scheduler.py``) stepped once per epoch.

    At schedule epoch ``t = epoch + epoch_offset``: ``warmup_multiplier(t, warmup_epochs, ...)`` (linear:
    ``f (1 - a) + a`` with ``a = t / warmup_epochs`` while ``t < warmup_epochs``) times ``gamma`` to the number of
    ``steps`` <= t (``bisect_right``). References that call ``scheduler.step()`` before each epoch (the
    scheduler's constructor already took step 0) train epoch e at ``t = e + 1``: ``epoch_offset`` 1. The
    cross-modal AGW's hand-written ``lr (e + 1) / 10`` for e < 10 is offset 0 with ``warmup_epochs`` 9 and
    factor 0.1 (``0.1 (1 - e/9) + e/9 = (e + 1) / 10``).
    """
    t = epoch + epoch_offset
    return warmup_multiplier(t, warmup_epochs, warmup_factor, warmup_method) * gamma ** bisect_right(list(steps), t)


def lr_factor(iteration: int, iters_per_epoch: int, max_epoch: int, sched: str, steps: Sequence[int],
              gamma: float, warmup_iters: int, warmup_factor: float, warmup_method: str,
              eta_min_ratio: float = 0.0, warmup_epochs: int = 0, epoch_offset: int = 0) -> float:
    """Multiplier of a group's initial LR at ``iteration`` (0-based); a pure function, so resume is exact.

    Multi-step milestones are in epochs; ``CosineAnnealingLR`` decays per iteration from 1 to
    ``eta_min_ratio``. For ``WarmupCosineEpochLR`` see :func:`warmup_cosine_epoch_factor`. For
    ``TimmCosineLR`` the epoch ``e = iteration // iters_per_epoch`` is timm's ``t = e + 1`` with
    ``t_initial = max_epoch``, ``warmup_t = warmup_epochs``, ``warmup_factor`` = warmup_lr_init / lr
    and ``eta_min_ratio`` = lr_min / lr, and TransReID's cycle settings (see :func:`timm_cosine_factor`).
    ``WarmupMultiStepEpochLR`` is :func:`warmup_multistep_epoch_factor` of the epoch (``epoch_offset`` added).
    """
    epoch = iteration // max(iters_per_epoch, 1)
    if sched == "WarmupMultiStepEpochLR":
        if warmup_iters > 0:
            raise ValueError("WarmupMultiStepEpochLR warms up per epoch over SOLVER.WARMUP_EPOCHS; "
                             "set SOLVER.WARMUP_ITERS 0")
        if epoch_offset < 0:
            raise ValueError(f"SOLVER.SCHED_EPOCH_OFFSET must be >= 0, got {epoch_offset}")
        return warmup_multistep_epoch_factor(epoch, steps, gamma, warmup_epochs, warmup_factor, warmup_method,
                                             epoch_offset)
    if sched == "TimmCosineLR":
        if warmup_iters > 0:
            raise ValueError("TimmCosineLR warms up per epoch over SOLVER.WARMUP_EPOCHS; set SOLVER.WARMUP_ITERS 0")
        if warmup_method != "linear":
            raise ValueError(f"TimmCosineLR's warmup is linear, not SOLVER.WARMUP_METHOD '{warmup_method}'")
        return timm_cosine_factor(epoch + TIMM_EPOCH_OFFSET, max_epoch, warmup_epochs, warmup_factor,
                                  eta_min_ratio, **TRANSREID_CYCLE)
    if warmup_epochs > 0:
        raise ValueError(f"SOLVER.WARMUP_EPOCHS is used by {' and '.join(EPOCH_WARMUP_SCHEDULES)} only; "
                         f"SOLVER.SCHED '{sched}' warms up over SOLVER.WARMUP_ITERS iterations")
    if sched == "WarmupCosineEpochLR":
        return warmup_cosine_epoch_factor(iteration, iters_per_epoch, max_epoch, warmup_iters, warmup_factor,
                                          warmup_method, eta_min_ratio)
    if sched == "MultiStepLR":
        factor = gamma ** sum(1 for s in steps if epoch >= s)
    elif sched == "CosineAnnealingLR":
        total = max(max_epoch * iters_per_epoch, 1)
        t = min(iteration, total) / total
        factor = eta_min_ratio + (1 - eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    else:
        raise ValueError(f"SOLVER.SCHED '{sched}' is not one of {SCHEDULES}")
    return factor * warmup_multiplier(iteration, warmup_iters, warmup_factor, warmup_method)


def build_lr_scheduler(optimizer: torch.optim.Optimizer, iters_per_epoch: int, max_epoch: int,
                       sched: str, steps: Sequence[int], gamma: float, warmup_iters: int,
                       warmup_factor: float, warmup_method: str, base_lr: float,
                       eta_min_lr: float = 0.0, warmup_epochs: int = 0,
                       epoch_offset: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepped once per iteration; its state is the iteration count.

    For ``WarmupCosineEpochLR`` and ``TimmCosineLR`` each group gets its own factor function so that
    ``eta_min_lr`` (and timm's warmup start ``warmup_factor * base_lr``) are absolute LRs, as in the
    references; the warmup of ``WarmupCosineEpochLR`` is relative (fast-reid's WarmupLR).
    """
    steps = tuple(steps)
    if sched not in ("WarmupCosineEpochLR", "TimmCosineLR"):
        ratio = eta_min_lr / base_lr if base_lr > 0 else 0.0
        lr_factor(0, iters_per_epoch, max_epoch, sched, steps, gamma, warmup_iters, warmup_factor,
                  warmup_method, ratio, warmup_epochs, epoch_offset)  # validates the settings now

        def fn(it: int) -> float:
            return lr_factor(it, iters_per_epoch, max_epoch, sched, steps, gamma, warmup_iters,
                             warmup_factor, warmup_method, ratio, warmup_epochs, epoch_offset)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

    fns: List = []
    for group in optimizer.param_groups:
        lr = group.get("initial_lr", group["lr"])
        min_ratio = eta_min_lr / lr if lr > 0 else 0.0
        start = warmup_factor * base_lr / lr if (sched == "TimmCosineLR" and lr > 0) else warmup_factor

        def fn(it: int, _min: float = min_ratio, _start: float = start) -> float:
            return lr_factor(it, iters_per_epoch, max_epoch, sched, steps, gamma, warmup_iters, _start,
                             warmup_method, _min, warmup_epochs)

        fn(0)  # validates the settings now
        fns.append(fn)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fns)


def scheduler_from_config(cfg, optimizer: torch.optim.Optimizer,
                          iters_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    s = cfg.SOLVER
    return build_lr_scheduler(optimizer, iters_per_epoch, s.MAX_EPOCH, s.SCHED, list(s.STEPS), s.GAMMA,
                              s.WARMUP_ITERS, s.WARMUP_FACTOR, s.WARMUP_METHOD, s.BASE_LR, s.ETA_MIN_LR,
                              s.get("WARMUP_EPOCHS", 0), s.get("SCHED_EPOCH_OFFSET", 0))
