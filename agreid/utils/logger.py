"""Rank-aware logging: rank 0 prints to the console, every rank writes its own file once the run is valid."""
from __future__ import annotations

import functools
import logging
import logging.handlers
import os
import sys
from typing import Optional

_FMT = "[%(asctime)s %(name)s %(levelname)s] %(message)s"
_DATEFMT = "%m/%d %H:%M:%S"


class _PendingFileHandler(logging.handlers.MemoryHandler):
    """Holds records until :func:`attach_log_file` names their file, so nothing is written before then."""

    def __init__(self) -> None:
        super().__init__(capacity=10 ** 9, flushLevel=logging.CRITICAL + 1, target=None, flushOnClose=False)

    def shouldFlush(self, record: logging.LogRecord) -> bool:
        return self.target is not None


@functools.lru_cache(maxsize=None)
def setup_logger(output_dir: Optional[str] = None, distributed_rank: int = 0,
                 name: str = "agreid") -> logging.Logger:
    """Configure the ``agreid`` logger once per (dir, rank): console on rank 0, ``log.txt[.rankN]`` files.

    Without ``output_dir`` only the console is set up; see :func:`hold_log_records`.
    """
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
        attach_log_file(output_dir, distributed_rank, name)
    return logger


def hold_log_records(name: str = "agreid") -> None:
    """Start keeping this process's records in memory for the next :func:`attach_log_file` (a new run).

    A previous run's log file in the same process is closed first, so this run never writes into it.
    """
    logger = logging.getLogger(name)
    for h in [h for h in logger.handlers if isinstance(h, (_PendingFileHandler, logging.FileHandler))]:
        logger.removeHandler(h)
        h.close()
    logger.addHandler(_PendingFileHandler())


def attach_log_file(output_dir: str, distributed_rank: int = 0, name: str = "agreid") -> str:
    """Open ``log.txt`` (``log.txt.rankN``) in ``output_dir``, write the records held so far, log there from now on."""
    logger = logging.getLogger(name)
    fname = os.path.join(output_dir, "log.txt" if distributed_rank == 0 else f"log.txt.rank{distributed_rank}")
    for h in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        logger.removeHandler(h)  # a previous run's file in this process: each run logs to its own folder
        h.close()
    os.makedirs(output_dir, exist_ok=True)
    fh = logging.FileHandler(fname, mode="a")
    fh.setLevel(logging.DEBUG)
    fh.setFormatter(logging.Formatter(_FMT, datefmt=_DATEFMT))
    for h in [h for h in logger.handlers if isinstance(h, _PendingFileHandler)]:
        h.setTarget(fh)
        h.flush()
        logger.removeHandler(h)
        h.close()
    logger.addHandler(fh)
    return fname
