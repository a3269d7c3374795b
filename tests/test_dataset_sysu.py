"""SYSU_MM01 on a miniature copy of the real layout: records, relabelling, single-shot trials and errors."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Dict, Sequence, Tuple

import pytest

from agreid.data import INFRARED, VISIBLE, build_dataset
from vi_helpers import expect_error, reference_listing, reference_single_shot, write_image
from agreid.data.datasets.single_shot import draw_single_shot, read_id_line

# (camera, pid) -> number of images; pid 14 is listed as a test id but never filmed.
IMAGES: Dict[Tuple[str, int], int] = {
    ("cam1", 1): 2, ("cam3", 1): 2, ("cam4", 2): 1, ("cam6", 2): 3, ("cam2", 3): 2, ("cam3", 3): 1,
    ("cam1", 10): 3, ("cam2", 10): 4, ("cam3", 10): 2, ("cam5", 10): 5, ("cam6", 10): 1,
    ("cam1", 11): 5, ("cam4", 11): 2, ("cam6", 11): 2,
    ("cam2", 12): 3, ("cam5", 12): 2, ("cam3", 12): 4,
}
TRAIN_IDS, VAL_IDS, TEST_IDS = "2,1", "3", "12,10,14,11"



def make_sysu(root: Path) -> Path:
    data = root / "SYSU-MM01"
    for (cam, pid), count in IMAGES.items():
        for i in range(count):
            write_image(data / cam / f"{pid:04d}" / f"{i + 1:04d}.jpg", pid + i)
    (data / "exp").mkdir(parents=True)
    for name, ids in (("train_id", TRAIN_IDS), ("val_id", VAL_IDS), ("test_id", TEST_IDS)):
        (data / "exp" / f"{name}.txt").write_text(ids + "\n")
    return data




@pytest.fixture
def sysu_root(tmp_path: Path) -> Path:
    make_sysu(tmp_path)
    return tmp_path


def test_train_records_and_relabelling(sysu_root: Path) -> None:
    ds = build_dataset("SYSU_MM01", str(sysu_root))
    assert ds.name == "SYSU_MM01" and ds.root == str(sysu_root / "SYSU-MM01")
    assert ds.num_train_pids == 3 and sorted({r.pid for r in ds.train}) == [0, 1, 2]
    assert len(ds.train) == 2 + 2 + 1 + 3 + 2 + 1
    for r in ds.train:
        cam = int(Path(r.path).parts[-3][3:])
        raw = int(Path(r.path).parts[-2])
        assert r.camid == cam and r.pid == {1: 0, 2: 1, 3: 2}[raw]
        assert r.modality == (INFRARED if cam in (3, 6) else VISIBLE)
    assert ds.num_train_cams == 5  # no train id was filmed by cam5
    without_val = build_dataset("SYSU_MM01", str(sysu_root), use_val=False)
    assert without_val.num_train_pids == 2 and len(without_val.train) == 8


def test_protocols_query_gallery_and_rule(sysu_root: Path) -> None:
    data = sysu_root / "SYSU-MM01"
    ds = build_dataset("SYSU_MM01", str(sysu_root))
    assert sorted(ds.protocols) == ["all", "indoor"]
    for mode, cameras in (("all", ("cam1", "cam2", "cam4", "cam5")), ("indoor", ("cam1", "cam2"))):
        proto = ds.protocol(mode)
        assert proto.rule == "sysu" and proto.cmc == "unique_ids" and len(proto.trials) == 10
        assert [r.path for r in proto.query] == [os.path.normpath(p) for p in reference_listing(data, ("cam3", "cam6"), TEST_IDS)]
        assert {(r.camid, r.modality) for r in proto.query} == {(3, INFRARED), (6, INFRARED)}
        assert {r.pid for r in proto.query} == {10, 11, 12}
        assert [r.path for r in proto.gallery] == [os.path.normpath(p) for p in reference_listing(data, cameras, TEST_IDS)]
        assert all(r.modality == VISIBLE and f"cam{r.camid}" in cameras for r in proto.gallery)
    assert len(ds.protocol("all").gallery) == 3 + 4 + 5 + 5 + 2 + 3 + 2
    assert len(ds.protocol("indoor").gallery) == 3 + 4 + 5 + 3


@pytest.mark.parametrize("mode, cameras", [("all", ("cam1", "cam2", "cam4", "cam5")), ("indoor", ("cam1", "cam2"))])
def test_single_shot_trials_match_the_reference_draw(sysu_root: Path, mode: str, cameras: Sequence[str]) -> None:
    data = sysu_root / "SYSU-MM01"
    random.seed(1234)
    state = random.getstate()
    proto = build_dataset("SYSU_MM01", str(sysu_root)).protocol(mode)
    assert random.getstate() == state
    draws = []
    for trial, (query_idx, gallery_idx) in enumerate(proto.trials):
        assert query_idx is None
        picked = [proto.gallery[i].path for i in gallery_idx]
        assert picked == [os.path.normpath(p) for p in reference_single_shot(data, cameras, trial, TEST_IDS)]
        assert len({(proto.gallery[i].pid, proto.gallery[i].camid) for i in gallery_idx}) == len(gallery_idx)
        draws.append(gallery_idx)
    assert len(set(draws)) > 1
    assert build_dataset("SYSU_MM01", str(sysu_root), num_trials=3).protocol(mode).trials == proto.trials[:3]


def test_draw_single_shot_is_seeded_random_choice() -> None:
    groups = [[0, 1, 2], [3], [4, 5, 6, 7, 8], [9, 10]]
    random.seed(7)
    expected = tuple(random.choice(g) for g in groups)
    assert draw_single_shot(groups, 7) == expected


def test_hidden_files_are_ignored(sysu_root: Path) -> None:
    (sysu_root / "SYSU-MM01" / "cam1" / "0010" / ".DS_Store").write_bytes(b"x")
    ds = build_dataset("SYSU_MM01", str(sysu_root))
    assert not any(".DS_Store" in r.path for r in ds.protocol("all").gallery)


def _error(root: Path, *fragments: str, **options) -> str:
    return expect_error("SYSU_MM01", root, *fragments, **options)


def test_missing_root_shows_layout(tmp_path: Path) -> None:
    _error(tmp_path, str(tmp_path / "SYSU-MM01"), "exp/train_id.txt", "cam3/ cam6/")


def test_missing_id_file(sysu_root: Path) -> None:
    os.remove(sysu_root / "SYSU-MM01" / "exp" / "test_id.txt")
    _error(sysu_root, str(sysu_root / "SYSU-MM01" / "exp" / "test_id.txt"), "Expected layout")


def test_unparsable_id_file(sysu_root: Path) -> None:
    path = sysu_root / "SYSU-MM01" / "exp" / "val_id.txt"
    path.write_text("3,x7\n")
    _error(sysu_root, str(path), "comma-separated")
    path.write_text("\n")
    _error(sysu_root, str(path), "no ids")
    path.write_text("3,3\n")
    _error(sysu_root, str(path), "repeats")


def test_read_id_line_tolerates_a_trailing_comma(tmp_path: Path) -> None:
    (tmp_path / "ids.txt").write_text("5, 3,\n99\n")
    assert read_id_line(str(tmp_path / "ids.txt"), "SYSU_MM01", "") == [5, 3]


def test_unparsable_file_name(sysu_root: Path) -> None:
    bad = sysu_root / "SYSU-MM01" / "cam5" / "0012" / "frame_a.jpg"
    write_image(bad)
    _error(sysu_root, str(bad), "Expected layout")


def test_empty_query_split(sysu_root: Path) -> None:
    for cam in ("cam3", "cam6"):
        for pid in (10, 11, 12):
            folder = sysu_root / "SYSU-MM01" / cam / f"{pid:04d}"
            for f in folder.glob("*") if folder.is_dir() else ():
                f.unlink()
    _error(sysu_root, "no query images", str(sysu_root / "SYSU-MM01"))


def test_empty_train_split(sysu_root: Path) -> None:
    (sysu_root / "SYSU-MM01" / "exp" / "train_id.txt").write_text("400\n")
    (sysu_root / "SYSU-MM01" / "exp" / "val_id.txt").write_text("401\n")
    _error(sysu_root, "no training images")


def test_bad_num_trials(sysu_root: Path) -> None:
    with pytest.raises(ValueError, match="num_trials"):
        build_dataset("SYSU_MM01", str(sysu_root), num_trials=0)
