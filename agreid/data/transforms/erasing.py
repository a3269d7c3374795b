"""Random erasing (Zhong et al.) of one rectangle of a normalised C×H×W tensor, applied last as in BoT."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch

from agreid.data.transforms.compose import require_rng

FILLS = ("mean", "random")


class RandomErasing:
    """With probability ``p``, overwrite a random rectangle covering ``area`` of the image with aspect in ``aspect``.

    ``fill="mean"`` writes zeros, i.e. the per-channel normalisation mean, as fast-reid does; ``fill="random"``
    writes standard-normal values (torchvision's ``value="random"``). The input tensor is not modified.
    """

    def __init__(self, p: float = 0.5, area: Tuple[float, float] = (0.02, 0.4),
                 aspect: Tuple[float, float] = (0.3, 3.3), fill: str = "mean", attempts: int = 100) -> None:
        if fill not in FILLS:
            raise ValueError(f"RandomErasing fill must be one of {', '.join(FILLS)}, got '{fill}'")
        if not (0 < area[0] <= area[1] <= 1) or not (0 < aspect[0] <= aspect[1]):
            raise ValueError(f"RandomErasing needs 0 < area ranges <= 1 and positive aspects, "
                             f"got area={area}, aspect={aspect}")
        self.p = float(p)
        self.area = (float(area[0]), float(area[1]))
        self.log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
        self.fill = fill
        self.attempts = int(attempts)

    def __call__(self, img: torch.Tensor, rng: Optional[np.random.Generator] = None) -> torch.Tensor:
        rng = require_rng(rng, "RandomErasing")
        if rng.random() >= self.p:
            return img
        c, h, w = img.shape
        for _ in range(self.attempts):
            target = rng.uniform(*self.area) * h * w
            ratio = math.exp(rng.uniform(*self.log_aspect))
            eh = int(round(math.sqrt(target * ratio)))
            ew = int(round(math.sqrt(target / ratio)))
            if 0 < eh < h and 0 < ew < w:
                top = int(rng.integers(0, h - eh + 1))
                left = int(rng.integers(0, w - ew + 1))
                out = img.clone()
                if self.fill == "mean":
                    out[:, top:top + eh, left:left + ew] = 0.0
                else:
                    noise = rng.standard_normal((c, eh, ew), dtype=np.float32)
                    out[:, top:top + eh, left:left + ew] = torch.from_numpy(noise).to(img.dtype)
                return out
        return img

    def __repr__(self) -> str:
        aspect = tuple(round(math.exp(v), 4) for v in self.log_aspect)
        return f"RandomErasing(p={self.p}, area={self.area}, aspect={aspect}, fill='{self.fill}')"
