"""Per-process set-up: config assembly, logging, seeding, and the output folder once the run is valid."""
from __future__ import annotations

import argparse
import logging
import os
import platform
import random
from typing import Optional

import numpy as np
import torch

from agreid.config import CfgNode, get_cfg
from agreid.utils import comm
from agreid.utils.checkpoint import atomic_write_text
from agreid.utils.errors import OutputDirError
from agreid.utils.logger import attach_log_file, hold_log_records, setup_logger


def setup_cfg(config_file: str, opts: Optional[list] = None) -> CfgNode:
    """Defaults, then the file (with its ``_BASE_`` chain), then command-line overrides; frozen."""
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts or [])
    cfg.freeze()
    return cfg


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_seed(cfg: CfgNode) -> int:
    """SEED < 0 draws a random seed on rank 0 and shares it, so samplers still agree across ranks."""
    return cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()


def default_setup(cfg: CfgNode, args: argparse.Namespace) -> CfgNode:
    """Set up logging, log the environment and config, seed; write nothing yet.

    OUTPUT_DIR stays untouched until :func:`prepare_output_dir`, which the caller runs once data,
    model and weights have been checked, so a run that fails on bad input leaves an earlier run's
    folder as it was. Returns the config with a concrete ``SEED``; each process seeds its global RNGs
    with SEED + rank.
    """
    rank = comm.get_rank()
    logger = setup_logger(None, distributed_rank=rank)
    hold_log_records()
    logger.info(f"Rank {rank} of {comm.get_world_size()}; Python {platform.python_version()}, "
                f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    logger.info(f"Command-line arguments: {args}")
    if getattr(args, "config_file", ""):
        with open(args.config_file, encoding="utf-8") as f:
            logger.info(f"Contents of {args.config_file}:\n{f.read()}")
    seed = resolve_seed(cfg)
    if seed != cfg.SEED:
        cfg.defrost()
        cfg.SEED = seed
        cfg.freeze()
        logger.info(f"Using random seed {seed}")
    changes = cfg.diff(get_cfg())
    logger.info("Config differs from the defaults in:\n  " + ("\n  ".join(changes) or "(nothing)"))
    logging.getLogger("agreid").debug(f"Full config:\n{cfg.dump()}")
    seed_all(seed + rank)
    torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK) and not getattr(args, "eval_only", False)
    return cfg


def prepare_output_dir(cfg: CfgNode) -> None:
    """Create OUTPUT_DIR, start ``log.txt`` (with everything logged so far) and write ``config.yaml``.

    An OUTPUT_DIR that cannot be created or written raises :class:`OutputDirError`.
    """
    out = cfg.OUTPUT_DIR
    if comm.is_main_process():
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as e:
            raise OutputDirError(f"OUTPUT_DIR '{out}' cannot be created: {e.strerror or e}") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise OutputDirError(f"OUTPUT_DIR '{out}' is not writable")
    comm.synchronize()
    try:
        attach_log_file(out, comm.get_rank())
        if comm.is_main_process():
            atomic_write_text(os.path.join(out, "config.yaml"), cfg.dump())
    except OSError as e:
        raise OutputDirError(f"Cannot write to OUTPUT_DIR '{out}': {e.strerror or e}") from None
