"""Geometric transforms on H×W×3 uint8 arrays: resize, horizontal flip, pad-and-random-crop."""
from __future__ import annotations

from typing import Optional, Sequence

from agreid.data.opencv import cv2
import numpy as np

from agreid.data.transforms.compose import require_rng


class Resize:
    """Resize to ``size`` = (height, width) with OpenCV bilinear interpolation."""

    def __init__(self, size: Sequence[int], interpolation: int = cv2.INTER_LINEAR) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.interpolation = interpolation

    def __call__(self, img: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        h, w = self.size
        if img.shape[:2] == (h, w):
            return img
        return cv2.resize(img, (w, h), interpolation=self.interpolation)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, img: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        if require_rng(rng, "RandomHorizontalFlip").random() < self.p:
            return np.ascontiguousarray(img[:, ::-1])
        return img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class PadRandomCrop:
    """Pad every side by ``padding`` pixels of constant ``fill`` and crop a random window of the original size."""

    def __init__(self, padding: int, fill: int = 0) -> None:
        if padding < 0:
            raise ValueError(f"PadRandomCrop padding must be >= 0, got {padding}")
        self.padding = int(padding)
        self.fill = int(fill)

    def __call__(self, img: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        rng = require_rng(rng, "PadRandomCrop")
        p = self.padding
        if p == 0:
            return img
        h, w = img.shape[:2]
        padded = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_CONSTANT, value=(self.fill,) * 3)
        top, left = (int(v) for v in rng.integers(0, 2 * p + 1, size=2))
        return np.ascontiguousarray(padded[top:top + h, left:left + w])

    def __repr__(self) -> str:
        return f"PadRandomCrop(padding={self.padding}, fill={self.fill})"
