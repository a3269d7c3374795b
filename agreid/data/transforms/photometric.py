"""Colour jitter on H×W×3 uint8 RGB arrays, in the manner of torchvision's ColorJitter but with an explicit rng."""
from __future__ import annotations

from typing import Optional

from agreid.data.opencv import cv2
import numpy as np

from agreid.data.transforms.compose import require_rng

_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _blend(img: np.ndarray, other, factor: float) -> np.ndarray:
    return np.clip(factor * img + (1.0 - factor) * other, 0.0, 255.0)


def _gray(img: np.ndarray) -> np.ndarray:
    return img @ _GRAY


def _adjust_hue(img: np.ndarray, shift: float) -> np.ndarray:
    hsv = cv2.cvtColor(img / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + shift * 360.0, 360.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0, 0.0, 255.0)


class ColorJitter:
    """With probability ``p``, scale brightness, contrast and saturation and shift hue, in a random order.

    Factors are drawn uniformly from [max(0, 1 - x), 1 + x] (hue: a shift in [-hue, hue] of a full turn).
    """

    def __init__(self, p: float = 0.5, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0) -> None:
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"ColorJitter hue must lie in [0, 0.5], got {hue}")
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if value < 0:
                raise ValueError(f"ColorJitter {name} must be >= 0, got {value}")
        self.p = float(p)
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.saturation = float(saturation)
        self.hue = float(hue)

    def __call__(self, img: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        rng = require_rng(rng, "ColorJitter")
        if rng.random() >= self.p:
            return img
        order = rng.permutation(4)
        factors = [rng.uniform(max(0.0, 1.0 - x), 1.0 + x)
                   for x in (self.brightness, self.contrast, self.saturation)]
        shift = rng.uniform(-self.hue, self.hue)
        out = img.astype(np.float32)
        for op in order:
            if op == 0 and self.brightness > 0:
                out = np.clip(out * np.float32(factors[0]), 0.0, 255.0)
            elif op == 1 and self.contrast > 0:
                out = _blend(out, np.float32(_gray(out).mean()), np.float32(factors[1]))
            elif op == 2 and self.saturation > 0:
                out = _blend(out, _gray(out)[..., None], np.float32(factors[2]))
            elif op == 3 and self.hue > 0:
                out = _adjust_hue(out, float(shift))
        return np.rint(out).astype(np.uint8)

    def __repr__(self) -> str:
        return (f"ColorJitter(p={self.p}, brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")
