"""Start ``main_func`` on one process, N local processes, several machines, or under ``torchrun``."""
from __future__ import annotations

import datetime
import logging
import os
import socket
import tempfile
import time
import traceback
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException

logger = logging.getLogger("agreid.launch")

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def started_by_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))


def launch(main_func: Callable[..., Any], num_gpus_per_machine: int, num_machines: int = 1,
           machine_rank: int = 0, dist_url: str = "auto", args: Sequence[Any] = (),
           timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> None:
    """Run ``main_func(*args)`` in every process of the job.

    Args:
        num_gpus_per_machine: processes per machine (one per GPU; on a CPU-only machine, gloo
            processes, which is how multi-process training is tested without a GPU).
        num_machines, machine_rank: multi-machine jobs; every machine runs this with its rank.
        dist_url: ``tcp://HOST:PORT`` of machine 0, or ``"auto"`` for a free local port (one
            machine only), or ``env://`` to read MASTER_ADDR/MASTER_PORT.
        timeout: limit on process-group set-up and on each collective, so a dead peer fails the
            job instead of hanging it.

    Under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK set) nothing is spawned: this process joins
    the group through env://. An exception in any spawned process ends every process and is
    re-raised here with its traceback.
    """
    if started_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        _init_group("env://", int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"]), timeout)
        _run_and_teardown(main_func, args)
        return
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("dist_url=auto only works on one machine; pass tcp://HOST:PORT of machine 0")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// init is unreliable across machines; prefer tcp://")
    with tempfile.TemporaryDirectory(prefix="agreid-launch-") as error_dir:
        try:
            mp.start_processes(_worker, nprocs=num_gpus_per_machine, start_method="spawn", daemon=False,
                               args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url,
                                     tuple(args), timeout, error_dir))
        except ProcessException as e:
            raise WorkerFailedError(_first_failure(error_dir) or str(e)) from e


class WorkerFailedError(RuntimeError):
    """A spawned process raised; the message holds the traceback of the rank that failed first."""


def _first_failure(error_dir: str) -> str:
    """The earliest recorded worker traceback (later ranks usually fail only because a peer vanished)."""
    reports = []
    for name in os.listdir(error_dir):
        with open(os.path.join(error_dir, name), encoding="utf-8") as f:
            stamp, _, text = f.read().partition("\n")
        reports.append((float(stamp), name, text))
    if not reports:
        return ""
    stamp, name, text = min(reports)
    others = sorted(n for _, n, _ in reports if n != name)
    extra = f" (then also {', '.join(others)})" if others else ""
    return f"{name} failed first{extra}:\n{text}"


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _init_group(url: str, rank: int, world: int, local_rank: int, timeout: datetime.timedelta) -> None:
    backend = _backend()
    if backend == "nccl":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"Local rank {local_rank} but only {torch.cuda.device_count()} GPUs visible")
        torch.cuda.set_device(local_rank)
    os.environ["LOCAL_RANK"] = str(local_rank)
    try:
        dist.init_process_group(backend=backend, init_method=url, world_size=world, rank=rank,
                                timeout=timeout)
    except Exception as e:
        raise RuntimeError(f"Process group set-up failed (backend {backend}, url {url}, rank {rank} "
                           f"of {world}): {e}") from e
    dist.barrier()


def _run_and_teardown(main_func: Callable[..., Any], args: Sequence[Any], error_file: str = "") -> None:
    """Run ``main_func``; on failure first record the traceback (with its time), then leave the group."""
    try:
        main_func(*args)
    except BaseException:
        if error_file:
            with open(error_file, "w", encoding="utf-8") as f:
                f.write(f"{time.time()}\n{traceback.format_exc()}")
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _worker(local_rank: int, main_func: Callable[..., Any], world_size: int, per_machine: int,
            machine_rank: int, dist_url: str, args: Sequence[Any], timeout: datetime.timedelta,
            error_dir: str) -> None:
    rank = machine_rank * per_machine + local_rank
    error_file = os.path.join(error_dir, f"rank{rank}")

    def job() -> None:
        _init_group(dist_url, rank, world_size, local_rank, timeout)
        main_func(*args)

    _run_and_teardown(job, (), error_file)
