"""Start ``main_func`` on one process, N local processes, several machines, or under ``torchrun``."""
from __future__ import annotations

import datetime
import json
import logging
import multiprocessing.connection
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from agreid.utils.errors import LaunchError, UserError, user_message

logger = logging.getLogger("agreid.launch")

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)
TERMINATE_GRACE_S = 10.0
REPORT_GRACE_S = 0.5


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def started_by_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))


def resolve_launch_device(device: str, num_procs: int) -> str:
    """"cuda" or "cpu" for ``num_procs`` processes on this machine, from MODEL.DEVICE; checked before spawning.

    ``cpu`` gives gloo CPU processes even where GPUs exist; ``auto`` gives one GPU per process when
    enough are visible, CPU processes when none is, and an error when some but too few are.
    """
    if num_procs < 1:
        raise LaunchError(f"--num-gpus must be at least 1, got {num_procs}")
    if device not in ("auto", "cpu", "cuda"):
        raise LaunchError(f"MODEL.DEVICE must be auto, cpu or cuda, got '{device}'")
    if device == "cpu":
        return "cpu"
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto" and visible == 0:
        return "cpu"
    if visible == 0:
        raise LaunchError("MODEL.DEVICE is cuda but no GPU is visible; use MODEL.DEVICE cpu (or auto)")
    if visible < num_procs:
        raise LaunchError(f"--num-gpus {num_procs} asks for one GPU per process but only {visible} GPU(s) "
                          f"are visible; lower --num-gpus, or run {num_procs} CPU processes with "
                          f"MODEL.DEVICE cpu")
    return "cuda"


def launch(main_func: Callable[..., Any], num_gpus_per_machine: int, num_machines: int = 1,
           machine_rank: int = 0, dist_url: str = "auto", args: Sequence[Any] = (),
           timeout: datetime.timedelta = DEFAULT_TIMEOUT, device: str = "auto") -> None:
    """Run ``main_func(*args)`` in every process of the job.

    Args:
        num_gpus_per_machine: processes per machine (one per GPU, or gloo CPU processes when
            ``device`` resolves to the CPU: how multi-process training is tested without a GPU).
        num_machines, machine_rank: multi-machine jobs; every machine runs this with its rank.
        dist_url: ``tcp://HOST:PORT`` of machine 0, ``"auto"`` for a free local port (one machine
            only), or ``env://`` to read MASTER_ADDR/MASTER_PORT.
        timeout: limit on process-group set-up and on each collective, so a dead peer fails the
            job instead of hanging it.
        device: MODEL.DEVICE; decides NCCL on GPUs or gloo on CPUs (:func:`resolve_launch_device`).

    Under ``torchrun`` nothing is spawned: this process joins the group through env://. When a
    spawned process fails, every process is stopped and the failure of the rank that failed first is
    raised here: a :class:`WorkerUserError` (one line) for bad input, :class:`WorkerFailedError` with
    the traceback for a bug, or for a rank killed by a signal.
    """
    if num_machines < 1 or not 0 <= machine_rank < num_machines:
        raise LaunchError(f"--machine-rank {machine_rank} is not in [0, --num-machines {num_machines})")
    if started_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        local = int(os.environ["LOCAL_RANK"])
        kind = resolve_launch_device(device, local + 1)
        _init_group("env://", int(os.environ["RANK"]), world, local, timeout, kind)
        _run_and_teardown(main_func, args)
        return
    kind = resolve_launch_device(device, num_gpus_per_machine)
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    if dist_url == "auto":
        if num_machines != 1:
            raise LaunchError("--dist-url auto only works on one machine; pass tcp://HOST:PORT of machine 0")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// init is unreliable across machines; prefer tcp://")
    with tempfile.TemporaryDirectory(prefix="agreid-launch-") as report_dir:
        context = mp.start_processes(
            _worker, nprocs=num_gpus_per_machine, start_method="spawn", daemon=False, join=False,
            args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, tuple(args), timeout,
                  report_dir, kind))
        try:
            _join(context.processes, machine_rank * num_gpus_per_machine, report_dir)
        finally:
            for path in getattr(context, "error_files", []) or []:
                if path and os.path.exists(path):
                    os.remove(path)


class WorkerFailedError(RuntimeError):
    """A spawned process failed with a bug (the message holds its traceback) or was killed by a signal."""


class WorkerUserError(UserError):
    """A spawned process stopped on bad input; the message is that rank's one line."""


def _join(processes: List[Any], first_rank: int, report_dir: str) -> None:
    """Wait for every process; on the first failure stop the others and raise the failure that caused it.

    The processes are polled together, so the failing rank is identified before any peer is stopped:
    a rank killed by a signal outranks peers that failed only because it vanished, and among ranks
    that raised, the earliest report wins (a rank still tearing down has usually written its report
    before its peers notice it is gone).
    """
    while True:
        live = [p.sentinel for p in processes if p.exitcode is None]
        if live:
            multiprocessing.connection.wait(live, timeout=1.0)
        codes = [p.exitcode for p in processes]
        if any(c not in (None, 0) for c in codes):
            time.sleep(REPORT_GRACE_S)  # let a peer that is failing too finish its report
            culprit = _culprit([p.exitcode for p in processes], first_rank, report_dir)
            _terminate(processes)
            raise culprit
        if all(c == 0 for c in codes):
            return


def _culprit(codes: List[Optional[int]], first_rank: int, report_dir: str) -> Exception:
    """The exception to raise: a rank killed by a signal, else bad input, else the earliest report."""
    reports = {i: read_report(report_dir, first_rank + i) for i in range(len(codes))}
    killed = [i for i, c in enumerate(codes) if c is not None and c < 0 and reports[i] is None]
    if killed:
        i = killed[0]
        try:
            name = signal.Signals(-codes[i]).name
        except ValueError:
            name = f"signal {-codes[i]}"
        return WorkerFailedError(f"rank {first_rank + i} was killed by {name}")
    with_report = [i for i in reports if reports[i] is not None]
    if not with_report:
        i = next(i for i, c in enumerate(codes) if c not in (None, 0))
        return WorkerFailedError(f"rank {first_rank + i} exited with code {codes[i]} without a report")
    user = [i for i in with_report if reports[i]["user_error"]]
    i = min(user or with_report, key=lambda j: reports[j]["time"])
    rep = reports[i]
    if rep["user_error"]:
        err = WorkerUserError(f"rank {first_rank + i}: {rep['message']}")
        err.display_name = rep["type"]  # type: ignore[attr-defined]
        return err
    others = sorted(first_rank + j for j in with_report if j != i)
    extra = f" (then also rank {', '.join(map(str, others))})" if others else ""
    return WorkerFailedError(f"rank {first_rank + i} failed first{extra}:\n{rep['traceback']}")


def _terminate(processes: List[Any]) -> None:
    for p in processes:
        if p.exitcode is None:
            p.terminate()
    deadline = time.monotonic() + TERMINATE_GRACE_S
    for p in processes:
        p.join(max(deadline - time.monotonic(), 0.0))
        if p.exitcode is None:
            p.kill()
            p.join()


def _report_path(report_dir: str, rank: int) -> str:
    return os.path.join(report_dir, f"rank{rank}.json")


def write_report(report_dir: str, rank: int, exc: BaseException) -> None:
    """Record a rank's failure atomically (write, then rename), so a reader never sees half a report."""
    report = {"time": time.time(), "rank": rank, "type": type(exc).__name__,
              "user_error": isinstance(exc, UserError), "message": user_message(exc),
              "traceback": traceback.format_exc()}
    path = _report_path(report_dir, rank)
    with open(path + ".part", "w", encoding="utf-8") as f:
        json.dump(report, f)
    os.replace(path + ".part", path)


def read_report(report_dir: str, rank: int) -> Optional[Dict[str, Any]]:
    """The failure report ``rank`` wrote, or None if it wrote none (or only an unreadable one)."""
    try:
        with open(_report_path(report_dir, rank), encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and {"time", "user_error"} <= set(report) else None


def _init_group(url: str, rank: int, world: int, local_rank: int, timeout: datetime.timedelta,
                device: str) -> None:
    backend = "nccl" if device == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    os.environ["LOCAL_RANK"] = str(local_rank)
    try:
        dist.init_process_group(backend=backend, init_method=url, world_size=world, rank=rank,
                                timeout=timeout)
    except Exception as e:
        raise RuntimeError(f"Process group set-up failed (backend {backend}, url {url}, rank {rank} "
                           f"of {world}): {e}") from e
    dist.barrier()


def _run_and_teardown(main_func: Callable[..., Any], args: Sequence[Any], report_dir: str = "",
                      rank: int = 0) -> None:
    """Run ``main_func``; on failure first record the report, then leave the group.

    After a success every rank waits for the others before leaving, so no rank tears the group down
    while a peer still uses it.
    """
    try:
        main_func(*args)
        if dist.is_initialized():
            dist.barrier()
    except BaseException as exc:
        if report_dir:
            write_report(report_dir, rank, exc)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _worker(local_rank: int, main_func: Callable[..., Any], world_size: int, per_machine: int,
            machine_rank: int, dist_url: str, args: Sequence[Any], timeout: datetime.timedelta,
            report_dir: str, device: str) -> None:
    rank = machine_rank * per_machine + local_rank

    def job() -> None:
        _init_group(dist_url, rank, world_size, local_rank, timeout, device)
        main_func(*args)

    _run_and_teardown(job, (), report_dir, rank)
    # Done, group left, logs flushed: skip the interpreter's teardown, whose C++ destructors (gloo threads)
    # occasionally abort a finished worker with "terminate called without an active exception".
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
