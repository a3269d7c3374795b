"""Atomic, weights-only checkpoints holding a run's full state, and tolerant model-weight loading."""
from __future__ import annotations

import logging
import os
import pickle
import random
import re
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from agreid.utils.errors import CheckpointError
from agreid.utils.key_report import group_keys

LAST_CHECKPOINT = "last_checkpoint"
STATE_KEYS = ("model", "net", "state_dict")  # where agreid / fast-reid, AGW and others keep the weights
_TEMP_NAME = re.compile(r"^(.+\.pth|last_checkpoint|config\.yaml|results\.(json|md))\.[A-Za-z0-9_]+\.tmp$")
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
    """Load a checkpoint on the CPU with ``weights_only=True``; a missing, unreadable, truncated or pickled
    file raises one :class:`CheckpointError` naming it."""
    if not os.path.exists(path):
        raise CheckpointError(f"Checkpoint file not found: {path}")
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint path {path} is not a file")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"Checkpoint file {path} is not readable (permission denied)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        why = next((ln.strip() for ln in first if "GLOBAL" in ln or "Unsupported" in ln), first[0] if first else "")
        raise CheckpointError(f"Checkpoint {path} holds pickled Python objects that weights-only loading refuses "
                              f"({why}). agreid never unpickles arbitrary code; re-save its state dict with "
                              f"tensors only (e.g. torch.save(model.state_dict(), ...)) where it was made; INSTALL.md, 'Checkpoints "
                              f"saved by reference code', has the one-line re-save for the reference files that "
                              f"need it (AGW's *_best.t, ReID-Survey's ignite checkpoints)") from None
    except Exception as e:
        raise CheckpointError(f"Cannot read checkpoint {path} (corrupt, truncated, or not a PyTorch file): "
                              f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"Checkpoint {path} holds a {type(obj).__name__}, expected a dict of tensors")
    return obj


def remove_stale_temp_files(folder: str) -> List[str]:
    """Delete the ``<name>.<random>.tmp`` files an interrupted :func:`atomic_write_bytes` left in ``folder``."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        if _TEMP_NAME.match(name):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(name)
            except OSError as e:
                logger.warning(f"Could not remove stale temporary file {name}: {e}")
    if removed:
        logger.info(f"Removed {len(removed)} temporary file(s) left by an interrupted save: {', '.join(removed)}")
    return removed


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


def _is_classifier(key: str) -> bool:
    return "classifier" in key


def load_model_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                       allow_partial: bool = False) -> Dict[str, List[str]]:
    """Load ``state_dict`` into ``model`` and log a key report; raise :class:`CheckpointError` if it does not fit.

    Keys are used as they are (after stripping ``module.``) when they fit the model; otherwise each
    registered reference format (TransReID, SeCap / fast-reid, ...) is tried and the file converted in
    memory, its dead weights listed. Model tensors missing from the file or of another shape are an
    error unless ``allow_partial`` (MODEL.ALLOW_PARTIAL_WEIGHTS); the one expected exception is a
    classifier of another class count (or absent), which is skipped and reported. File keys the
    model does not have are reported, not an error; those naming a constant of the model (a non-persistent
    buffer, such as a fixed GeM exponent older checkpoints saved) are dropped silently.
    """
    model = unwrap_model(model)
    own = model.state_dict()
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()
          if isinstance(v, torch.Tensor)}
    dead: List[str] = []
    fmt = ""
    if any(k not in sd for k in own if not k.endswith("num_batches_tracked")):
        from agreid.modeling.conversion import convert_reference_state

        converted = convert_reference_state(sd, model)
        if converted is not None:
            sd, dead, fmt = dict(converted.state_dict), list(converted.dead), converted.format
            for note in converted.notes:
                logger.info(f"{converted.format}: {note}")
    loadable, mismatched, cls_mismatched = {}, [], []
    for k, v in sd.items():
        if k in own:
            if tuple(own[k].shape) == tuple(v.shape):
                loadable[k] = v
            else:
                msg = f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                (cls_mismatched if _is_classifier(k) else mismatched).append(msg)
    missing = [k for k in own if k not in loadable and not k.endswith("num_batches_tracked")]
    shape_keys = {m.split(":")[0] for m in mismatched + cls_mismatched}
    missing_cls = [k for k in missing if _is_classifier(k) and k not in shape_keys]
    missing = [k for k in missing if not _is_classifier(k) and k not in shape_keys]
    constants = {name for name, _ in model.named_buffers()} - set(own)  # non-persistent buffers (e.g. a fixed GeM p)
    unexpected = [k for k in sd if k not in own and k not in constants]
    unused_cls = [k for k in unexpected if _is_classifier(k)]
    unexpected = [k for k in unexpected if not _is_classifier(k)]
    via = f" (converted from the {fmt} format)" if fmt else ""
    if not loadable:
        raise CheckpointError(f"No tensor of {source} matches the model {type(model).__name__}{via}: "
                              f"{len(sd)} keys such as {', '.join(sorted(sd)[:3]) or '(none)'} vs the model's "
                              f"{', '.join(list(own)[:3])}. Is it a checkpoint of this MODEL.META_ARCHITECTURE?")
    if (missing or mismatched) and not allow_partial:
        parts = []
        if missing:
            parts.append(f"{len(missing)} model tensors missing from the file ({'; '.join(group_keys(missing)[:4])})")
        if mismatched:
            parts.append(f"{len(mismatched)} of another shape ({'; '.join(mismatched[:3])})")
        raise CheckpointError(f"{source} does not fit the model{via}: {' and '.join(parts)}. Check the config "
                              f"(backbone, depth, stride, class count), or set MODEL.ALLOW_PARTIAL_WEIGHTS True "
                              f"to load only the matching tensors")
    model.load_state_dict(loadable, strict=False)
    logger.info(f"Loaded {len(loadable)}/{len(own)} tensors from {source}{via}")
    if mismatched:
        logger.warning("Skipped tensors whose shapes differ:\n  " + "\n  ".join(mismatched))
    if missing:
        logger.warning("Missing keys (left at initialisation):\n  " + "\n  ".join(group_keys(missing)))
    if cls_mismatched or missing_cls:
        logger.info("Classifier not loaded (another class count, or none in the file); it starts fresh: "
                    + ", ".join(cls_mismatched + missing_cls))
    if dead:
        logger.info(f"Unused in the reference ({fmt} dead weights), not instantiated:\n  "
                    + "\n  ".join(group_keys(dead)))
    if unexpected:
        logger.warning("Unexpected keys (in the file, not in the model):\n  " + "\n  ".join(group_keys(unexpected)))
    if unused_cls:
        logger.info("Classifier weights not used by this model: " + ", ".join(sorted(unused_cls)))
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched,
            "unused_classifier": unused_cls, "classifier_skipped": cls_mismatched + missing_cls,
            "dead": dead, "format": [fmt] if fmt else []}


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

    def load(self, path: str, checkpointables: Optional[List[str]] = None,
             allow_partial: bool = False) -> Dict[str, Any]:
        """Load model weights and the named checkpointables (all when None); return the remaining items.

        The weights are the ``model`` entry (agreid, fast-reid), ``net`` (AGW), ``state_dict``, or the file
        itself when it is a bare state dict (TransReID).
        """
        data = load_checkpoint_file(path)
        state = None
        for key in STATE_KEYS:
            if isinstance(data.get(key), Mapping):
                state = data.pop(key)
                break
        if state is None:
            state, data = data, {}
        load_model_weights(self.model, state, source=path, allow_partial=allow_partial)
        names = list(self.checkpointables) if checkpointables is None else checkpointables
        for k in names:
            if k in data and k in self.checkpointables:
                try:
                    self.checkpointables[k].load_state_dict(data.pop(k))
                except (ValueError, KeyError, RuntimeError) as e:
                    raise CheckpointError(f"Checkpoint {path}: its '{k}' state does not fit this run "
                                          f"({type(e).__name__}: {e})") from None
            elif k in self.checkpointables:
                raise CheckpointError(f"Checkpoint {path} has no '{k}' state; cannot resume from it")
        return data

    def resume_or_load(self, weights: str, resume: bool,
                       allow_partial: bool = False) -> Tuple[Dict[str, Any], bool]:
        """With ``resume`` and a last checkpoint in ``save_dir``, restore everything; else load ``weights``.

        Resuming first removes temporary files an interrupted save left behind.
        """
        if resume and self.save_to_disk:
            remove_stale_temp_files(self.save_dir)
        last = self.last_checkpoint() if resume else None
        if last:
            logger.info(f"Resuming from {last}")
            return self.load(last), True
        if resume:
            logger.info(f"No checkpoint to resume in {self.save_dir}; starting a new run")
        if weights:
            self.load(weights, checkpointables=[], allow_partial=allow_partial)
        return {}, False
