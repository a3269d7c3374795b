"""Conversion of a uint8 H×W×3 array to a normalised float C×H×W tensor, and the normalisation statistics."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

HALF_MEAN = (0.5, 0.5, 0.5)  # (x/255 - 0.5) / 0.5 = (x - 127.5) / 127.5: TransReID, SeCap / fast-reid ViTs
HALF_STD = (0.5, 0.5, 0.5)

_STATS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD), "half": (HALF_MEAN, HALF_STD)}


def norm_stats(name: str) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """(mean, std) in [0, 1] units for ``INPUT.NORM`` = "imagenet", "clip" or "half" (mean = std = 0.5)."""
    key = name.lower()
    if key not in _STATS:
        raise ValueError(f"Unknown INPUT.NORM '{name}'; choose one of {', '.join(sorted(_STATS))}")
    return _STATS[key]


class ToTensorNormalize:
    """Scale to [0, 1], subtract ``mean`` and divide by ``std`` per channel, and return a float32 C×H×W tensor."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.stats = (tuple(float(m) for m in mean), tuple(float(s) for s in std))
        self.mean = np.asarray(mean, dtype=np.float32) * 255.0
        self.inv_std = 1.0 / (np.asarray(std, dtype=np.float32) * 255.0)

    def __call__(self, img: np.ndarray, rng: Optional[np.random.Generator] = None) -> torch.Tensor:
        out = (img.astype(np.float32) - self.mean) * self.inv_std
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))

    def __repr__(self) -> str:
        return f"ToTensorNormalize(mean={self.stats[0]}, std={self.stats[1]})"
