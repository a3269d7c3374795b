"""Ranked-list pictures: each query beside its top-k gallery matches, framed green (true) or red (false)."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch

from agreid.data.image_io import read_image
from agreid.data.opencv import cv2
from agreid.data.records import ImageRecord
from agreid.evaluation.rules import RankMeta, resolve_rule
from agreid.evaluation.scoring import record_labels

GREEN, RED, BLUE = (0, 170, 0), (220, 0, 0), (40, 90, 230)


def top_matches(dist: torch.Tensor, q_records: Sequence[ImageRecord], g_records: Sequence[ImageRecord],
                rule: str, query_indices: Sequence[int], topk: int) -> List[Tuple[List[int], List[bool]]]:
    """For each chosen query: the first ``topk`` gallery positions its rule keeps (ties by gallery order)
    and whether each is a true match. Removed items are skipped, as in the metrics."""
    q, g = record_labels(q_records), record_labels(g_records)
    meta = lambda lab: RankMeta(*(torch.as_tensor(lab[k]) for k in ("pids", "camids", "views", "times")))  # noqa: E731
    qm, gm = meta(q), meta(g)
    rule_fn = resolve_rule(rule)
    out = []
    for i in query_indices:
        keep = rule_fn(qm[i:i + 1], gm)[0]
        kept = keep.nonzero().flatten()
        order = kept[torch.sort(dist[i, kept], stable=True).indices][:topk].tolist()
        out.append((order, [int(g["pids"][j]) == int(q["pids"][i]) for j in order]))
    return out


def _cell(path: str, colour: Tuple[int, int, int], size: Tuple[int, int], border: int) -> np.ndarray:
    h, w = size
    img = cv2.resize(read_image(path), (w - 2 * border, h - 2 * border), interpolation=cv2.INTER_AREA)
    return cv2.copyMakeBorder(img, border, border, border, border, cv2.BORDER_CONSTANT, value=colour)


def render_rank_grid(q_records: Sequence[ImageRecord], g_records: Sequence[ImageRecord],
                     rows: Sequence[Tuple[int, Tuple[List[int], List[bool]]]], path: str,
                     cell: Tuple[int, int] = (128, 64), border: int = 4, gap: int = 12) -> np.ndarray:
    """Write a PNG with one row per query: the query (blue frame), a gap, then its ranked gallery items.

    ``rows`` holds (query position, (gallery positions, match flags)). Returns the RGB canvas.
    """
    h, w = cell
    width = max(len(r[1][0]) for r in rows) if rows else 0
    canvas = np.full((len(rows) * (h + border), w + gap + width * (w + border), 3), 255, dtype=np.uint8)
    for row, (qi, (order, matches)) in enumerate(rows):
        y = row * (h + border)
        canvas[y:y + h, :w] = _cell(q_records[qi].path, BLUE, cell, border)
        for col, (gi, hit) in enumerate(zip(order, matches)):
            x = w + gap + col * (w + border)
            canvas[y:y + h, x:x + w] = _cell(g_records[gi].path, GREEN if hit else RED, cell, border)
    if not cv2.imwrite(path, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise OSError(f"Could not write {path}")
    return canvas
