"""TF-CLIP's CLIP-Memory: one visual centre per training identity, built once before training, kept as a buffer.

``AsuradaYuci/TF-CLIP`` (``processor/processor_clipreid_stage2.py``, ``generate_cluster_features``) builds
it with the initial CLIP image encoder: every training tracklet is cut into consecutive SEQ_LEN-frame clips
(``dense``: the last clip padded by cycling its frames), a clip's feature is the frame mean of the projected
CLS, a tracklet's feature the mean of its clips, and identity k's centre the mean of its tracklets. The
reference recomputes it at every start and never saves it; agreid keeps it in ``bank`` (K×d) with a
``ready`` flag, so it is written in agreid checkpoints and a resumed run does not rebuild it.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from agreid.data.video import dense_clips
from agreid.utils.errors import CheckpointError


def dense_clip_records(tracklets: Sequence[Any], seq_len: int) -> Tuple[List[Any], torch.Tensor]:
    """One record per dense clip of each tracklet (frames = the clip) and each clip's tracklet position.

    A record of exactly ``seq_len`` frames is read back frame for frame by every deterministic sampling
    method (rrs_test, evenly, all), so any inference loader returns exactly the clip.
    """
    records, owners = [], []
    for i, rec in enumerate(tracklets):
        frames = getattr(rec, "frames", ())
        if not frames:
            raise ValueError(f"CLIP-Memory needs tracklet records with frames; '{rec.path}' has none")
        for clip in dense_clips(frames, seq_len):
            records.append(rec.replace(frames=tuple(clip)))
            owners.append(i)
    return records, torch.tensor(owners, dtype=torch.long)


def identity_centres(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Row k = mean of the ``features`` rows labelled k; every label 0..num_classes-1 must occur."""
    counts = torch.bincount(labels, minlength=num_classes)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"CLIP-Memory labels must lie in [0, {num_classes}), got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    missing = (counts == 0).nonzero().flatten()
    if missing.numel():
        raise ValueError(f"CLIP-Memory: {missing.numel()} of {num_classes} identities have no training tracklet "
                         f"(e.g. {missing[:5].tolist()}); MODEL.HEADS.NUM_CLASSES must equal the training ids")
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64)
    sums.index_add_(0, labels, features.double())
    return (sums / counts[:, None].double()).float()


MEMORY_KEYS = ("clip_memory", "bank", "memory")
MEMORY_FILE_NAME = "clip_memory.pt"
"""The CLIP-Memory file looked for beside a reference checkpoint (MODEL.WEIGHTS)."""


def memory_file_beside(weights: str) -> str:
    """``<folder of weights>/clip_memory.pt`` when ``weights`` is set and that file exists, else ""."""
    if not weights:
        return ""
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), MEMORY_FILE_NAME)
    return path if os.path.isfile(path) else ""


def read_memory_file(path: str) -> torch.Tensor:
    """A K×d CLIP-Memory from ``path``: a bare tensor, or a dict holding it under one of :data:`MEMORY_KEYS`
    (``clip_memory.pt`` beside a reference checkpoint, or agreid's own cache file); read weights-only."""
    if not os.path.isfile(path):
        raise CheckpointError(f"CLIP-Memory file '{path}' (MODEL.TFCLIP.MEMORY_FILE) is not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"Cannot read the CLIP-Memory file '{path}': {type(e).__name__}: "
                              f"{(str(e).strip().splitlines() or [''])[0]}") from None
    if isinstance(obj, dict):
        obj = next((obj[k] for k in MEMORY_KEYS if torch.is_tensor(obj.get(k))), None)
    if not torch.is_tensor(obj) or obj.dim() != 2 or not obj.is_floating_point():
        raise CheckpointError(f"'{path}' does not hold a K×d float CLIP-Memory (a tensor, or a dict with one of "
                              f"{MEMORY_KEYS})")
    return obj.float()


class ClipMemory(nn.Module):
    """The K×d memory bank (buffer ``bank``) and whether it has been built or loaded (buffer ``ready``)."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("bank", torch.zeros(num_classes, dim))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))
        self._ready_host: Optional[bool] = False  # ``ready`` read once per set/load, not every training step
        self.register_load_state_dict_post_hook(lambda module, _keys: setattr(module, "_ready_host", None))

    @property
    def is_ready(self) -> bool:
        if self._ready_host is None:
            self._ready_host = bool(self.ready)  # the only device sync, after a load
        return self._ready_host

    @torch.no_grad()
    def set(self, bank: torch.Tensor) -> None:
        """Install a K×d bank (from the build, a cache or a file) and mark it ready."""
        if tuple(bank.shape) != tuple(self.bank.shape):
            raise ValueError(f"CLIP-Memory of shape {tuple(bank.shape)} does not fit the model's "
                             f"{tuple(self.bank.shape)} (classes × projection width)")
        self.bank.copy_(bank.to(self.bank))
        self.ready.fill_(True)
        self._ready_host = True

    @torch.no_grad()
    def compute(self, encode_clips: Callable[[Dict[str, Any]], torch.Tensor],
                batches: Iterable[Dict[str, Any]], owners: torch.Tensor, tracklet_labels: torch.Tensor) -> torch.Tensor:
        """The bank from clip ``batches`` (carrying ``indices`` into the clip list): ``encode_clips(batch)`` gives
        B×d clip features, averaged per tracklet (``owners``), then per identity (``tracklet_labels``)."""
        num_tracklets = len(tracklet_labels)
        sums = torch.zeros(num_tracklets, self.bank.shape[1], dtype=torch.float64)
        counts = torch.zeros(num_tracklets, dtype=torch.float64)
        for batch in batches:
            feats = encode_clips(batch).detach().double().cpu()
            tracklet = owners[torch.as_tensor(batch["indices"]).long().cpu()]
            sums.index_add_(0, tracklet, feats)
            counts.index_add_(0, tracklet, torch.ones(len(tracklet), dtype=torch.float64))
        if bool((counts == 0).any()):
            raise RuntimeError("CLIP-Memory: the loader did not return every clip")
        return identity_centres((sums / counts[:, None]).float(), tracklet_labels, self.bank.shape[0])

    def extra_repr(self) -> str:
        return f"classes={self.bank.shape[0]}, dim={self.bank.shape[1]}"


__all__ = ["ClipMemory", "MEMORY_KEYS", "dense_clip_records", "identity_centres", "read_memory_file",
           "MEMORY_FILE_NAME", "memory_file_beside"]
