"""Video re-ID data: clip sampling from tracklets, a tracklet Dataset and tracklet-level feature extraction.

Every random choice draws from an explicit ``np.random.Generator``, never from global random state,
so a clip depends only on its (index, aug_seed) item.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from agreid.data.common import Item, ReIDImageSet
from agreid.data.image_io import read_image
from agreid.data.records import TrackletRecord, modality_index, view_index

SAMPLE_METHODS = ("rrs_train", "rrs_test", "evenly", "random", "all")
"""``rrs_train`` / ``rrs_test``: the AG-VPReID reference's chunked (restricted random) sampling;
``evenly`` / ``random`` / ``all``: torchreid's video sampling."""
RANDOM_METHODS = ("rrs_train", "random")
_SAMPLING_STREAM = 1


def chunk_table(num_frames: int, seq_len: int) -> np.ndarray:
    """The reference's ``seq_len`` × ceil(n/seq_len) table of frame indices: consecutive chunks, last frame padding."""
    width = math.ceil(num_frames / seq_len)
    strip = np.concatenate([np.arange(num_frames), np.full(width * seq_len - num_frames, num_frames - 1)])
    return strip.reshape(seq_len, width)


def sample_indices(num_frames: int, seq_len: int, method: str,
                   rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Frame indices of one clip of a ``num_frames``-frame tracklet (temporal order kept).

    - ``rrs_train``: one random frame from each of ``seq_len`` chunks; ``rrs_test``: each chunk's first.
    - ``evenly``: truncate to a multiple of ``seq_len`` and stride evenly; short tracklets repeat the last frame.
    - ``random``: ``seq_len`` sorted random frames, with replacement only if the tracklet is shorter.
    - ``all``: every frame (the clip length is then the tracklet length).
    Random methods need ``rng``.
    """
    if num_frames < 1:
        raise ValueError("cannot sample a clip from a tracklet with no frames")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if method not in SAMPLE_METHODS:
        raise ValueError(f"Unknown clip sampling method '{method}'; choose one of {', '.join(SAMPLE_METHODS)}")
    if method in RANDOM_METHODS and rng is None:
        raise ValueError(f"Clip sampling '{method}' is random and needs an explicit np.random.Generator; "
                         f"index the dataset with (index, aug_seed) to get one")
    if method == "all":
        return np.arange(num_frames)
    if method in ("rrs_train", "rrs_test"):
        table = chunk_table(num_frames, seq_len)
        if method == "rrs_test":
            return table[:, 0]
        return table[np.arange(seq_len), rng.integers(table.shape[1], size=seq_len)]
    if method == "evenly":
        if num_frames < seq_len:
            return np.concatenate([np.arange(num_frames), np.full(seq_len - num_frames, num_frames - 1)])
        stride = (num_frames - num_frames % seq_len) // seq_len
        return np.arange(seq_len) * stride
    return np.sort(rng.choice(num_frames, size=seq_len, replace=num_frames < seq_len))


def sample_clip(frames: Sequence[str], seq_len: int, method: str,
                rng: Optional[np.random.Generator] = None) -> List[str]:
    """The frame paths of one clip of ``frames`` chosen by :func:`sample_indices`."""
    return [frames[i] for i in sample_indices(len(frames), seq_len, method, rng).tolist()]


def dense_clips(frames: Sequence[str], seq_len: int) -> List[List[str]]:
    """Every frame as consecutive ``seq_len``-frame clips; the last clip is padded by cycling its own frames."""
    if not frames:
        raise ValueError("cannot split a tracklet with no frames into clips")
    clips = [list(frames[i:i + seq_len]) for i in range(0, len(frames), seq_len)]
    last = clips[-1]
    clips[-1] = [last[i % len(last)] for i in range(seq_len)]
    return clips


def load_clip(paths: Sequence[str], transform: Optional[Callable[..., Any]], decoder: str,
              seed: Optional[int] = None) -> Any:
    """Decode and transform ``paths`` into a (len, 3, H, W) tensor (or a (len, H, W, 3) array without transform).

    With ``seed`` every frame gets a fresh ``np.random.default_rng(seed)``, so flips, crops and erasing
    agree across the frames of a clip; a repeated frame is decoded once.
    """
    done: Dict[str, Any] = {}
    for path in paths:
        if path not in done:
            img = read_image(path, decoder)
            if transform is not None:
                img = transform(img, np.random.default_rng(seed) if seed is not None else None)
            done[path] = img
    frames = [done[p] for p in paths]
    return torch.stack(frames) if isinstance(frames[0], torch.Tensor) else np.stack(frames)


class TrackletSet(ReIDImageSet):
    """One sampled clip per :class:`TrackletRecord`: the keys of :class:`ReIDImageSet`, ``images`` (seq_len, 3, H, W).

    Index with ``i`` (deterministic methods only) or ``(i, aug_seed)``: frame choice and augmentation
    then derive from the seed alone. With ``method="all"`` clips have the tracklet's length, so batch
    them one at a time.
    """

    def __init__(self, records: Sequence[TrackletRecord], transform: Optional[Callable[..., Any]] = None,
                 seq_len: int = 8, method: str = "rrs_test", decoder: str = "opencv") -> None:
        super().__init__(records, transform, decoder)
        if method not in SAMPLE_METHODS:
            raise ValueError(f"Unknown clip sampling method '{method}'; choose one of {', '.join(SAMPLE_METHODS)}")
        empty = [r.path for r in self.records if not getattr(r, "frames", ())]
        if empty:
            raise ValueError(f"TrackletSet needs TrackletRecords with frames; {len(empty)} have none, "
                             f"e.g. '{empty[0]}'")
        self.seq_len = int(seq_len)
        self.method = method

    def __getitem__(self, item: Item) -> Dict[str, Any]:
        index, seed = self._split(item)
        rec = self.records[index]
        rng = np.random.default_rng((seed, _SAMPLING_STREAM)) if seed is not None else None
        clip = sample_clip(rec.frames, self.seq_len, self.method, rng)
        return self.item(rec, index, load_clip(clip, self.transform, self.decoder, seed))


def _tracklet_clips(tracklets: Sequence[TrackletRecord], seq_len: int, method: str,
                    seed: int) -> List[Tuple[int, List[str]]]:
    clips: List[Tuple[int, List[str]]] = []
    for i, rec in enumerate(tracklets):
        if method == "all":
            clips.extend((i, clip) for clip in dense_clips(rec.frames, seq_len))
        else:
            rng = np.random.default_rng((seed, i)) if method in RANDOM_METHODS else None
            clips.append((i, sample_clip(rec.frames, seq_len, method, rng)))
    return clips


def takes_frames(model: nn.Module) -> bool:
    """Whether tracklet evaluation should give ``model`` frames (B·T images, features averaged per clip, the image
    models) rather than whole B×T clips: a temporal model says so with ``takes_clips = True``."""
    return not getattr(getattr(model, "module", model), "takes_clips", False)


def extract_tracklet_features(model: nn.Module, tracklets: Sequence[TrackletRecord],
                              transform: Optional[Callable[..., Any]], seq_len: int, method: str,
                              batch_size: int, decoder: str = "opencv", *, seed: int = 0,
                              frame_level: bool = True) -> torch.Tensor:
    """Tracklet features (N × D, CPU): the mean over each tracklet's clips of the clip feature.

    ``method="all"`` cuts each tracklet into consecutive ``seq_len`` clips (see :func:`dense_clips`);
    other methods take one clip (random methods seeded by ``seed`` and the tracklet's position). A
    ``frame_level`` model gets the (B·seq_len) frames as one image batch and a clip's feature is the
    mean of its frame features; otherwise the model gets (B, seq_len, 3, H, W) and returns B × D.
    """
    from agreid.evaluation.evaluator import inference_context

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    clips = _tracklet_clips(tracklets, seq_len, method, seed)
    sums: Optional[torch.Tensor] = None
    counts = torch.zeros(len(tracklets))
    with inference_context(model), torch.no_grad():
        for start in range(0, len(clips), batch_size):
            chunk = clips[start:start + batch_size]
            owners = torch.tensor([i for i, _ in chunk], dtype=torch.long)
            recs = [tracklets[i] for i, _ in chunk]
            images = torch.stack([torch.as_tensor(load_clip(c, transform, decoder)) for _, c in chunk])
            batch = {"images": images,
                     "targets": torch.tensor([r.pid for r in recs]),
                     "camids": torch.tensor([r.camid for r in recs]),
                     "views": torch.tensor([view_index(r.view) for r in recs]),
                     "modalities": torch.tensor([modality_index(r.modality) for r in recs])}
            if frame_level:
                b, s = images.shape[:2]
                flat = {k: v.repeat_interleave(s) for k, v in batch.items() if k != "images"}
                flat["images"] = images.flatten(0, 1)
                feats = model(flat).float().cpu().view(b, s, -1).mean(dim=1)
            else:
                feats = model(batch).float().cpu()
            if sums is None:
                sums = torch.zeros(len(tracklets), feats.shape[1])
            sums.index_add_(0, owners, feats)
            counts.index_add_(0, owners, torch.ones(len(chunk)))
    if sums is None:
        return torch.zeros(0, 0)
    return sums / counts[:, None]
