"""Composition of transforms that all receive the same explicit per-item random generator."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np


def require_rng(rng: Optional[np.random.Generator], name: str) -> np.random.Generator:
    """Return ``rng`` or raise: random transforms never fall back to global random state."""
    if rng is None:
        raise ValueError(f"{name} is random and needs an explicit np.random.Generator; "
                         f"index the dataset with (index, aug_seed) to get one")
    return rng


class Compose:
    """Apply transforms in order, passing each the same ``rng`` so an item's augmentation depends only on its seed."""

    def __init__(self, transforms: Sequence[Callable[..., Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any, rng: Optional[np.random.Generator] = None) -> Any:
        for t in self.transforms:
            img = t(img, rng)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"
