"""Atomic, weights-only checkpoints holding a run's full state, and tolerant model-weight loading."""
from __future__ import annotations

import logging
import os
import random
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from agreid.utils.key_report import group_keys

LAST_CHECKPOINT = "last_checkpoint"
logger = logging.getLogger("agreid.checkpoint")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel wrappers."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def atomic_write_bytes(path: str, write_fn) -> None:
    """Write a file through ``write_fn(fileobj)`` into a temp file in the same folder, then rename.

    A crash mid-write leaves the previous file intact, never a truncated one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_torch_save(obj: Any, path: str) -> None:
    atomic_write_bytes(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def load_checkpoint_file(path: str) -> Dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``; explain a missing or unreadable file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(f"Cannot read checkpoint {path} (corrupt, truncated, or not a weights-only "
                           f"PyTorch file): {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise RuntimeError(f"Checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def get_rng_state() -> Dict[str, Any]:
    """Every RNG a training step may touch, in weights-only-loadable types."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(_to_tuple(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def load_model_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                       source: str = "checkpoint") -> Dict[str, List[str]]:
    """Load matching tensors into ``model``; skip shape mismatches; log and return a key report.

    Classifier weights are expected to be absent from evaluation-only models (no classes) and are
    reported separately so they do not hide a real problem such as renamed BNNeck keys.
    """
    model = unwrap_model(model)
    own = model.state_dict()
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    loadable, mismatched = {}, []
    for k, v in sd.items():
        if k in own:
            if tuple(own[k].shape) == tuple(v.shape):
                loadable[k] = v
            else:
                mismatched.append(f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}")
    incompatible = model.load_state_dict(loadable, strict=False)
    missing = [k for k in incompatible.missing_keys if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    unused_cls = [k for k in unexpected if "classifier" in k]
    unexpected = [k for k in unexpected if "classifier" not in k]
    logger.info(f"Loaded {len(loadable)}/{len(own)} tensors from {source}")
    if mismatched:
        logger.warning("Skipped tensors whose shapes differ:\n  " + "\n  ".join(mismatched))
    if missing:
        logger.warning("Missing keys (left at initialisation):\n  " + "\n  ".join(group_keys(missing)))
    if unexpected:
        logger.warning("Unexpected keys (in the file, not in the model):\n  " + "\n  ".join(group_keys(unexpected)))
    if unused_cls:
        logger.info("Classifier weights not used by this model: " + ", ".join(sorted(unused_cls)))
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched,
            "unused_classifier": unused_cls}


class Checkpointer:
    """Saves and restores the model plus named checkpointables (optimizer, scheduler, scaler, …).

    ``save`` writes ``<dir>/<name>.pth`` atomically and records it in ``<dir>/last_checkpoint``;
    only the main process writes.
    """

    def __init__(self, model: nn.Module, save_dir: str, save_to_disk: bool = True,
                 **checkpointables: Any) -> None:
        self.model = model
        self.save_dir = save_dir
        self.save_to_disk = save_to_disk
        self.checkpointables = {k: v for k, v in checkpointables.items() if v is not None}

    def save(self, name: str, mark_last: bool = True, **extra: Any) -> Optional[str]:
        """Write ``<name>.pth``; with ``mark_last`` it becomes the checkpoint ``--resume`` continues from."""
        if not self.save_to_disk:
            return None
        data: Dict[str, Any] = {"model": unwrap_model(self.model).state_dict()}
        for k, obj in self.checkpointables.items():
            data[k] = obj.state_dict()
        data.update(extra)
        path = os.path.join(self.save_dir, f"{name}.pth")
        atomic_torch_save(data, path)
        if mark_last:
            atomic_write_text(os.path.join(self.save_dir, LAST_CHECKPOINT), f"{name}.pth")
        logger.info(f"Saved checkpoint to {path}")
        return path

    def last_checkpoint(self) -> Optional[str]:
        marker = os.path.join(self.save_dir, LAST_CHECKPOINT)
        if not os.path.isfile(marker):
            return None
        with open(marker, encoding="utf-8") as f:
            path = os.path.join(self.save_dir, f.read().strip())
        return path if os.path.isfile(path) else None

    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        """Load model weights and the named checkpointables (all when None); return the remaining items."""
        data = load_checkpoint_file(path)
        state = data.pop("model", None)
        if state is None:
            state, data = data, {}
        load_model_weights(self.model, state, source=path)
        names = list(self.checkpointables) if checkpointables is None else checkpointables
        for k in names:
            if k in data and k in self.checkpointables:
                self.checkpointables[k].load_state_dict(data.pop(k))
            elif k in self.checkpointables:
                raise KeyError(f"Checkpoint {path} has no '{k}' state; cannot resume from it")
        return data

    def resume_or_load(self, weights: str, resume: bool) -> Tuple[Dict[str, Any], bool]:
        """With ``resume`` and a last checkpoint in ``save_dir``, restore everything; else load ``weights``."""
        last = self.last_checkpoint() if resume else None
        if last:
            logger.info(f"Resuming from {last}")
            return self.load(last), True
        if resume:
            logger.info(f"No checkpoint to resume in {self.save_dir}; starting a new run")
        if weights:
            self.load(weights, checkpointables=[])
        return {}, False
