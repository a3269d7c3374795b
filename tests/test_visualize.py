"""Ranked-list pictures: removed items skipped, true matches framed green, false ones red."""
import numpy as np
import torch

from agreid.data.opencv import cv2
from agreid.data.records import ImageRecord
from agreid.evaluation.visualize import BLUE, GREEN, RED, render_rank_grid, top_matches


def records(tmp_path, prefix, pids, cams):
    out = []
    for i, (pid, cam) in enumerate(zip(pids, cams)):
        path = str(tmp_path / f"{prefix}{i}.jpg")
        cv2.imwrite(path, np.full((32, 16, 3), 30 * i % 255, dtype=np.uint8))
        out.append(ImageRecord(path, pid, cam))
    return out


def test_top_matches_skip_removed_and_grid_colours(tmp_path):
    q = records(tmp_path, "q", [1, 2], [0, 0])
    g = records(tmp_path, "g", [1, 1, 2, 3, 2], [0, 1, 1, 1, 0])
    dist = torch.tensor([[0.0, 0.2, 0.1, 0.3, 0.4], [0.5, 0.1, 0.3, 0.3, 0.0]])
    ranked = top_matches(dist, q, g, "market", [0, 1], topk=3)
    assert ranked[0] == ([2, 1, 3], [False, True, False])
    assert ranked[1] == ([1, 2, 3], [False, True, False])
    out = tmp_path / "grid.png"
    canvas = render_rank_grid(q, g, list(zip([0, 1], ranked)), str(out), cell=(40, 20), border=3, gap=10)
    assert out.is_file() and canvas.shape == (2 * 43, 20 + 10 + 3 * 23, 3)
    assert tuple(canvas[1, 1]) == BLUE
    assert tuple(canvas[1, 30 + 1]) == RED
    assert tuple(canvas[1, 30 + 23 + 1]) == GREEN
    assert tuple(canvas[43 + 1, 30 + 23 + 1]) == GREEN
    saved = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(saved, canvas)
