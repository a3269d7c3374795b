"""AGVPReID on a miniature copy of its real layout: tracklets, frame order, cameras, views, raw test ids, protocols."""
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from agreid.data import DatasetError, build_dataset
from agreid.data.datasets.agvpreid import ATTRIBUTE_COLUMNS
from agreid.data.opencv import cv2
from agreid.data.records import TrackletRecord

Tracklet = Tuple[str, int, int, int]
"""(split folder, person id, camera, number of frames); the tracklet folder is named after its position."""

TRACKLETS: List[Tracklet] = [
    ("train", 8, 0, 3), ("train", 8, 4, 2), ("train", 15, 2, 4), ("train", 3, 5, 1),
    ("case1_aerial_to_ground/query", 1604, 4, 3), ("case1_aerial_to_ground/query", 1700, 5, 2),
    ("case1_aerial_to_ground/gallery", 1604, 1, 2), ("case1_aerial_to_ground/gallery", 1700, 3, 3),
    ("case1_aerial_to_ground/gallery", 1800, 0, 2),
    ("case2_ground_to_aerial/query", 1604, 2, 2),
    ("case2_ground_to_aerial/gallery", 1604, 4, 2), ("case2_ground_to_aerial/gallery", 1900, 5, 1),
]


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((16, 8, 3), 60, dtype=np.uint8))


def frame_name(pid: int, cam: int, frame: int) -> str:
    return f"P{pid:04d}T230811A1C{cam}E1K1F{frame:03d}.jpg"


@pytest.fixture
def vp_root(tmp_path: Path) -> Path:
    data = tmp_path / "AG-VPReID"
    for n, (split, pid, cam, frames) in enumerate(TRACKLETS):
        for f in reversed(range(frames)):
            write_image(data / split / str(pid) / f"tracklet_{n:02d}" / frame_name(pid, cam, 9 - f))
    (data / "train" / "8" / "tracklet_empty").mkdir()
    attrs = data / "attributes"
    attrs.mkdir()
    (attrs / "train.csv").write_text("id," + ",".join(ATTRIBUTE_COLUMNS) + "\n"
                                     "8," + ",".join(str(i % 3) for i in range(15)) + "\n")
    return tmp_path


def by_name(records) -> Dict[str, TrackletRecord]:
    return {os.path.basename(r.path): r for r in records}


def test_train_tracklets_frames_cameras_and_relabelling(vp_root: Path) -> None:
    ds = build_dataset("AGVPReID", str(vp_root))
    data = vp_root / "AG-VPReID"
    assert ds.root == str(data)
    assert ds.pid_map == {("AGVPReID", 3): 0, ("AGVPReID", 8): 1, ("AGVPReID", 15): 2}
    train = by_name(ds.train)
    assert sorted(train) == ["tracklet_00", "tracklet_01", "tracklet_02", "tracklet_03"]
    assert all(isinstance(r, TrackletRecord) for r in ds.train)
    t0 = train["tracklet_00"]
    assert (t0.pid, t0.camid, t0.view) == (1, 0, "cctv")
    assert t0.path == str(data / "train" / "8" / "tracklet_00")
    assert [os.path.basename(f) for f in t0.frames] == [frame_name(8, 0, f) for f in (7, 8, 9)]
    assert all(os.path.isfile(f) for f in t0.frames)
    assert [(train[k].camid, train[k].view) for k in ("tracklet_01", "tracklet_02", "tracklet_03")] == [
        (4, "aerial"), (2, "wearable"), (5, "aerial")]
    np.testing.assert_array_equal(t0.extras["attributes"], [i % 3 for i in range(15)])
    assert "attributes" not in train["tracklet_02"].extras


def test_protocols_keep_raw_ids(vp_root: Path) -> None:
    ds = build_dataset("AGVPReID", str(vp_root))
    assert sorted(ds.protocols) == ["A2G", "G2A"]
    a2g, g2a = ds.protocol("A2G"), ds.protocol("G2A")
    assert a2g.rule == g2a.rule == "market"
    assert [(r.pid, r.camid, r.view) for r in a2g.query] == [(1604, 4, "aerial"), (1700, 5, "aerial")]
    assert [(r.pid, r.camid, r.view) for r in a2g.gallery] == [(1604, 1, "cctv"), (1700, 3, "wearable"),
                                                               (1800, 0, "cctv")]
    assert [(r.pid, r.view) for r in g2a.query] == [(1604, "wearable")]
    assert [(r.pid, r.view) for r in g2a.gallery] == [(1604, "aerial"), (1900, "aerial")]
    assert [len(r.frames) for r in a2g.gallery] == [2, 3, 2]
    assert all("/case2_ground_to_aerial/gallery/" in r.path.replace(os.sep, "/") for r in g2a.gallery)


def test_errors(vp_root: Path) -> None:
    data = vp_root / "AG-VPReID"
    with pytest.raises(DatasetError, match=re.escape(str(vp_root / "missing"))):
        build_dataset("AGVPReID", str(vp_root / "missing"))
    bad = data / "train" / "15" / "tracklet_xx" / "frame_001.jpg"
    write_image(bad)
    with pytest.raises(DatasetError, match=re.escape(str(bad))) as info:
        build_dataset("AGVPReID", str(vp_root))
    assert "case1_aerial_to_ground/query/" in str(info.value)
    shutil.rmtree(bad.parent)
    write_image(data / "train" / "anon" / "t0" / frame_name(1, 0, 1))
    with pytest.raises(DatasetError, match="not an integer identity"):
        build_dataset("AGVPReID", str(vp_root))
    shutil.rmtree(data / "train" / "anon")
    (data / "attributes" / "train.csv").write_text("id,gender\n8,1\n")
    with pytest.raises(DatasetError, match="lacks column"):
        build_dataset("AGVPReID", str(vp_root))
    shutil.rmtree(data / "attributes")
    assert build_dataset("AGVPReID", str(vp_root)).num_train_pids == 3
    shutil.rmtree(data / "case2_ground_to_aerial" / "query")
    with pytest.raises(DatasetError, match=re.escape(str(data / "case2_ground_to_aerial" / "query"))):
        build_dataset("AGVPReID", str(vp_root))
    (data / "case2_ground_to_aerial" / "query" / "1604" / "empty").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no tracklets found"):
        build_dataset("AGVPReID", str(vp_root))
