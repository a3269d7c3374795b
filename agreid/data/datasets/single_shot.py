"""Camera-folder test sets and seeded single-shot draws, built exactly as the visible-infrared reference code does.

SYSU-MM01 and LLCM store test images as ``<camera dir>/<pid:04d>/<file>``. The reference code (mangye16
Cross-Modal-Re-ID-baseline, ZYK100/LLCM) lists identities sorted, cameras in a fixed order and each folder's
files sorted, then for trial t calls ``random.seed(t)`` and ``random.choice`` once per existing
(identity, camera) folder. These helpers reproduce that listing order and those draws.
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from typing import Callable, List, Pattern, Sequence, Tuple

from agreid.data.records import DatasetError, ImageRecord, Indices

ANY_IMAGE = re.compile(r"^.+\.(?:jpe?g|png|bmp)$", re.IGNORECASE)


@dataclass(frozen=True)
class CameraGroup:
    """The images of one identity in one camera folder, in the reference's (sorted) file order."""

    pid: int
    camera_dir: str
    paths: Tuple[str, ...]


def read_id_line(path: str, dataset: str, layout: str) -> List[int]:
    """Identities of an id file such as ``exp/test_id.txt``: the first line, comma-separated ints.

    Like the reference, later lines are ignored; an empty field after a trailing comma is tolerated.
    """
    if not os.path.isfile(path):
        raise DatasetError(f"{dataset}: expected file '{path}' was not found.\nExpected layout:\n{layout}")
    with open(path, encoding="utf-8-sig") as handle:
        lines = handle.read().splitlines()
    cells = [c.strip() for c in (lines[0] if lines else "").split(",")]
    if cells and not cells[-1]:
        cells.pop()
    try:
        ids = [int(c) for c in cells]
    except ValueError:
        raise DatasetError(f"{dataset}: '{path}', line 1 must be comma-separated integer ids, "
                           f"got {(lines[0] if lines else '')[:80]!r}.\nExpected layout:\n{layout}") from None
    if not ids:
        raise DatasetError(f"{dataset}: '{path}' lists no ids.\nExpected layout:\n{layout}")
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise DatasetError(f"{dataset}: '{path}' repeats id(s) {repeated[:5]}; each id must appear once.")
    return ids


def list_camera_groups(data_dir: str, camera_dirs: Sequence[str], pids: Sequence[int], dataset: str,
                       layout: str, file_pattern: Pattern[str] = ANY_IMAGE) -> List[CameraGroup]:
    """The (identity, camera) folders ``<data_dir>/<camera>/<pid:04d>/`` in the reference's order.

    Identities are visited as sorted ``%04d`` strings, cameras in the given order; missing or empty folders
    are skipped. Hidden files are ignored and any other file must match ``file_pattern``.
    """
    groups: List[CameraGroup] = []
    for name in sorted("%04d" % pid for pid in pids):
        for camera in camera_dirs:
            folder = os.path.join(data_dir, camera, name)
            if not os.path.isdir(folder):
                continue
            files = sorted(f for f in os.listdir(folder) if not f.startswith("."))
            for fname in files:
                if not file_pattern.match(fname) or not os.path.isfile(os.path.join(folder, fname)):
                    raise DatasetError(f"{dataset}: '{os.path.join(folder, fname)}' is not an image named as "
                                       f"expected ({file_pattern.pattern}).\nExpected layout:\n{layout}")
            if files:
                groups.append(CameraGroup(int(name), camera, tuple(os.path.join(folder, f) for f in files)))
    return groups


def flatten_groups(groups: Sequence[CameraGroup], make_record: Callable[[CameraGroup, str], ImageRecord]
                   ) -> Tuple[List[ImageRecord], List[List[int]]]:
    """All images of ``groups`` as records (the reference's query order) and each group's record positions."""
    records: List[ImageRecord] = []
    positions: List[List[int]] = []
    for group in groups:
        positions.append(list(range(len(records), len(records) + len(group.paths))))
        records.extend(make_record(group, path) for path in group.paths)
    return records, positions


def draw_single_shot(positions: Sequence[Sequence[int]], seed: int) -> Tuple[int, ...]:
    """One position per group, as ``random.seed(seed)`` then one ``random.choice`` per group in order.

    A private ``random.Random(seed)`` gives the same stream as the seeded module-level generator without
    touching the global random state.
    """
    rng = random.Random(seed)
    return tuple(rng.choice(list(group)) for group in positions)


def single_shot_trials(positions: Sequence[Sequence[int]], num_trials: int, side: str
                       ) -> Tuple[Tuple[Indices, Indices], ...]:
    """``Protocol.trials`` for seeds 0..num_trials-1, subsetting the ``"gallery"`` or the ``"query"`` side."""
    if side not in ("query", "gallery"):
        raise ValueError(f"side must be 'query' or 'gallery', got {side!r}")
    trials: List[Tuple[Indices, Indices]] = []
    for seed in range(num_trials):
        drawn = draw_single_shot(positions, seed)
        trials.append((drawn, None) if side == "query" else (None, drawn))
    return tuple(trials)


def check_num_trials(num_trials: int, dataset: str) -> int:
    """``num_trials`` as a positive int, or a ValueError naming the dataset option."""
    if isinstance(num_trials, bool) or not isinstance(num_trials, int) or num_trials < 1:
        raise ValueError(f"{dataset}: option num_trials must be a positive integer (the reference uses 10), "
                         f"got {num_trials!r}")
    return num_trials
