"""Rank-aware logging: rank 0 prints to the console, every rank writes its own file."""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Optional

_FMT = "[%(asctime)s %(name)s %(levelname)s] %(message)s"
_DATEFMT = "%m/%d %H:%M:%S"


@functools.lru_cache(maxsize=None)
def setup_logger(output_dir: Optional[str] = None, distributed_rank: int = 0,
                 name: str = "agreid") -> logging.Logger:
    """Configure the ``agreid`` logger once per (dir, rank): console on rank 0, ``log.txt[.rankN]`` files."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    formatter = logging.Formatter(_FMT, datefmt=_DATEFMT)
    if distributed_rank == 0 and not any(getattr(h, "_agreid_console", False) for h in logger.handlers):
        ch = logging.StreamHandler(stream=sys.stdout)
        ch.setLevel(logging.INFO)
        ch.setFormatter(formatter)
        ch._agreid_console = True  # type: ignore[attr-defined]
        logger.addHandler(ch)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        fname = "log.txt" if distributed_rank == 0 else f"log.txt.rank{distributed_rank}"
        fh = logging.FileHandler(os.path.join(output_dir, fname), mode="a")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(formatter)
        logger.addHandler(fh)
    return logger
