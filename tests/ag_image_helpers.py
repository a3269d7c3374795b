"""Test helpers for the aerial-ground image adapters: tiny real JPEGs and path-list files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence, Tuple

import numpy as np

from agreid.data.opencv import cv2

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_jpeg(path: Path, size: Tuple[int, int] = (16, 8), color: Sequence[int] = (40, 90, 160)) -> Path:
    """Write a solid ``size`` = (height, width) BGR JPEG at ``path``, creating its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.empty((size[0], size[1], 3), dtype=np.uint8)
    image[:] = color
    assert cv2.imwrite(str(path), image)
    return path


def write_list(path: Path, lines: Iterable[str], images_under: Path = None, newline: str = "\n") -> Path:
    """Write a path-list file; with ``images_under`` also create a tiny JPEG for every listed path."""
    lines = list(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + newline for line in lines))
    if images_under is not None:
        for line in lines:
            write_jpeg(images_under / line.replace("\\", "/"))
    return path


def rel_paths(records, base: Path) -> list:
    """Record paths relative to ``base`` with '/' separators, in record order."""
    return [os.path.relpath(r.path, str(base)).replace(os.sep, "/") for r in records]
