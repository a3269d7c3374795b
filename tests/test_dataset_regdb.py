"""RegDB on a miniature copy of the real layout: idx lists per trial, modalities, protocols and errors."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from agreid.data import INFRARED, VISIBLE, build_dataset
from vi_helpers import expect_error, write_image

PER_ID = 2
# trial -> (train folder ids, test folder ids); labels are list positions, as in the real idx files.
SPLITS: Dict[int, Tuple[List[int], List[int]]] = {1: ([1, 4, 2], [3, 5]), 2: ([3, 5, 1], [2, 4])}



def image_name(folder_id: int, modality: str, i: int) -> str:
    if modality == "Visible":
        return f"Visible/{folder_id}/male_front_v_{folder_id * 10 + i:05d}_{folder_id}.bmp"
    return f"Thermal/{folder_id}/male_front_t_{folder_id * 10 + i:05d}_{folder_id}.bmp"


def make_regdb(root: Path) -> Path:
    data = root / "RegDB"
    for folder_id in range(1, 6):
        for modality in ("Visible", "Thermal"):
            for i in range(PER_ID):
                write_image(data / image_name(folder_id, modality, i), folder_id)
    (data / "idx").mkdir(parents=True)
    for trial, (train_ids, test_ids) in SPLITS.items():
        for split, ids in (("train", train_ids), ("test", test_ids)):
            for modality in ("Visible", "Thermal"):
                lines = [f"{image_name(fid, modality, i)} {label}" for label, fid in enumerate(ids)
                         for i in range(PER_ID)]
                (data / "idx" / f"{split}_{modality.lower()}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return data


@pytest.fixture
def regdb_root(tmp_path: Path) -> Path:
    make_regdb(tmp_path)
    return tmp_path


def _folder(path: str) -> int:
    return int(Path(path).parts[-2])


@pytest.mark.parametrize("trial", [1, 2])
def test_train_records_per_trial(regdb_root: Path, trial: int) -> None:
    ds = build_dataset("RegDB", str(regdb_root), trial=trial)
    train_ids = SPLITS[trial][0]
    assert ds.name == "RegDB" and ds.root == str(regdb_root / "RegDB")
    assert ds.num_train_pids == 3 and len(ds.train) == 3 * 2 * PER_ID
    assert {_folder(r.path) for r in ds.train} == set(train_ids)
    for r in ds.train:
        assert r.pid == train_ids.index(_folder(r.path))
        is_visible = Path(r.path).parts[-3] == "Visible"
        assert (r.modality, r.camid) == ((VISIBLE, 1) if is_visible else (INFRARED, 2))
        assert os.path.isfile(r.path)


def test_protocols_and_directions(regdb_root: Path) -> None:
    ds = build_dataset("RegDB", str(regdb_root), trial=2)
    assert sorted(ds.protocols) == ["T2V", "V2T"]
    v2t, t2v = ds.protocol("V2T"), ds.protocol("T2V")
    for proto in (v2t, t2v):
        assert proto.rule == "none" and proto.cmc == "standard" and proto.trials == ()
        assert proto.options["trial"] == 2
    assert all(r.modality == VISIBLE and r.camid == 1 for r in v2t.query)
    assert all(r.modality == INFRARED and r.camid == 2 for r in v2t.gallery)
    assert v2t.query == t2v.gallery and v2t.gallery == t2v.query
    expected = [str(regdb_root / "RegDB" / image_name(fid, "Visible", i))
                for fid in SPLITS[2][1] for i in range(PER_ID)]
    assert [r.path for r in v2t.query] == expected
    assert [r.pid for r in v2t.query] == [0, 0, 1, 1]
    assert {_folder(r.path) for r in v2t.gallery} == {2, 4}


def test_default_trial_is_one(regdb_root: Path) -> None:
    ds = build_dataset("RegDB", str(regdb_root))
    assert {_folder(r.path) for r in ds.protocol("V2T").query} == set(SPLITS[1][1])


def _error(root: Path, *fragments: str, **options) -> str:
    return expect_error("RegDB", root, *fragments, **options)


def test_missing_root_shows_layout(tmp_path: Path) -> None:
    _error(tmp_path, str(tmp_path / "RegDB"), "idx/train_visible_<t>.txt", "Thermal/<id>")


def test_missing_idx_file(regdb_root: Path) -> None:
    os.remove(regdb_root / "RegDB" / "idx" / "test_thermal_1.txt")
    _error(regdb_root, str(regdb_root / "RegDB" / "idx" / "test_thermal_1.txt"), "Expected layout")
    _error(regdb_root, "train_visible_3.txt", trial=3)


def test_malformed_line(regdb_root: Path) -> None:
    path = regdb_root / "RegDB" / "idx" / "train_thermal_1.txt"
    path.write_text(path.read_text() + "Thermal/9/x.bmp label\n")
    _error(regdb_root, str(path), f"line {3 * PER_ID + 1}", "<relative path> <label>")


def test_listed_image_missing(regdb_root: Path) -> None:
    os.remove(regdb_root / "RegDB" / image_name(3, "Visible", 1))
    _error(regdb_root, "test_visible_1.txt", image_name(3, "Visible", 1).split("/")[-1])


def test_empty_list(regdb_root: Path) -> None:
    path = regdb_root / "RegDB" / "idx" / "test_visible_1.txt"
    path.write_text("\n")
    _error(regdb_root, str(path), "lists no images")


@pytest.mark.parametrize("trial", [0, 11, "2", True])
def test_invalid_trial(regdb_root: Path, trial) -> None:
    with pytest.raises(ValueError, match="trial"):
        build_dataset("RegDB", str(regdb_root), trial=trial)
