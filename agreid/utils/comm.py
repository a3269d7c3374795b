"""Thin helpers over ``torch.distributed`` that also work in a single process."""
from __future__ import annotations

import os
from typing import Any, List

import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", get_rank())) if is_dist() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all ranks; a no-op in a single process."""
    if is_dist() and get_world_size() > 1:
        dist.barrier()


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
        else torch.device("cpu")


def all_gather_tensor(tensor: torch.Tensor) -> List[torch.Tensor]:
    """Gather tensors whose first dimension may differ between ranks; returns them in rank order."""
    if get_world_size() == 1:
        return [tensor]
    device = _comm_device()
    local = tensor.to(device).contiguous()
    size = torch.tensor([local.shape[0]], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(get_world_size())]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    max_size = max(sizes)
    padded = local.new_zeros((max_size,) + tuple(local.shape[1:]))
    padded[: local.shape[0]] = local
    out = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(out, padded)
    return [o[:n].to(tensor.device) for o, n in zip(out, sizes)]


def all_gather_object(obj: Any) -> List[Any]:
    """Gather a small picklable object from every rank (use tensors for anything large)."""
    if get_world_size() == 1:
        return [obj]
    out: List[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def reduce_dict_mean(values: dict) -> dict:
    """Average a dict of scalar floats over ranks (same keys on every rank)."""
    if get_world_size() == 1 or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    t /= get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of ``tensor`` over ranks, returned on the tensor's device."""
    if get_world_size() == 1:
        return tensor
    t = tensor.to(_comm_device())
    dist.all_reduce(t)
    return (t / get_world_size()).to(tensor.device)


def shared_random_seed() -> int:
    """A fresh random seed drawn on rank 0 and shared with every rank (for SEED < 0)."""
    return int(broadcast_object(int.from_bytes(os.urandom(4), "little") % 2**31))
