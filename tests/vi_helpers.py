"""Shared pieces of the visible-infrared adapter tests: tiny images, error checks, the reference draws."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import List, Sequence

import numpy as np
import pytest

from agreid.data import DatasetError, build_dataset
from agreid.data.opencv import cv2


def write_image(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((16, 8, 3), value % 256, dtype=np.uint8))


def expect_error(dataset: str, root: Path, *fragments: str, **options) -> str:
    """Build ``dataset`` expecting one DatasetError whose message holds every fragment."""
    with pytest.raises(DatasetError) as info:
        build_dataset(dataset, str(root), **options)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def _folders(data: Path, cameras: Sequence[str], test_ids: str):
    for name in sorted("%04d" % int(x) for x in test_ids.split(",")):
        for cam in cameras:
            folder = os.path.join(str(data), cam, name)
            if os.path.isdir(folder):
                yield sorted(folder + "/" + f for f in os.listdir(folder))


def reference_listing(data: Path, cameras: Sequence[str], test_ids: str) -> List[str]:
    """Every image, in the order the reference's query listing builds it."""
    return [os.path.normpath(f) for files in _folders(data, cameras, test_ids) for f in files]


def reference_single_shot(data: Path, cameras: Sequence[str], trial: int, test_ids: str) -> List[str]:
    """The reference's gallery draw: global random.seed(trial), then random.choice per (id, camera)."""
    random.seed(trial)
    return [os.path.normpath(random.choice(files)) for files in _folders(data, cameras, test_ids)]
