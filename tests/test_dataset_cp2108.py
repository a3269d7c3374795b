"""CP2108 adapter on a miniature copy of its layout: lists, views, day-night flag, attributes, protocols."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ag_image_helpers import rel_paths, write_list
from agreid.data import DatasetError, build_dataset

TRAIN = ["train/0001_05_1_3_0001.jpg", "train/0001_25_0_3_0002.jpg", "train/0002_12_1_4_0003.jpg",
         "train/0002_31_1_4_0004.jpg", "train/-1_05_1_3_0005.jpg"]
QUERY = ["query/0010_25_1_1_0001.jpg", "query/0010_05_0_1_0002.jpg", "query/0011_26_1_2_0003.jpg",
         "query/0012_06_1_2_0004.jpg", "query/0013_27_0_1_0005.jpg"]
GALLERY = ["gallery/0010_12_1_1_0006.jpg", "gallery/0010_30_0_1_0007.jpg", "gallery/0011_07_0_2_0008.jpg",
           "gallery/0013_28_1_1_0009.jpg", "gallery/-1_08_1_1_0010.jpg"]
ATTRIBUTES = {"10_0_1": {"Glasses": "yes", "Pose": "back", "Gender": "male"},
              "10_1_0": {"Glasses": "no", "Pose": "front"},
              "11_1_1": {"Glasses": "no"},
              "1_0_0": {"Glasses": "yes", "Pose": "front"}}
INDEX = {"Glasses": {"no": 0, "yes": 1, "unknown": 2}, "Pose": {"front": 0, "back": 1, "unknown": 2},
         "Gender": {"male": 0, "female": 1}}


def make_cp2108(root: Path, version: int = 100, attributes: bool = True) -> Path:
    d = root / "CP2108"
    images = d / (f"images_v{version}" if version >= 100 else "images")
    for split, lines in (("train", TRAIN), ("query", QUERY), ("gallery", GALLERY)):
        write_list(d / f"split_v{version}" / f"{split}_v{version}.txt", lines, images_under=images)
    if attributes:
        (d / "attributes_labeled_qwen.json").write_text(json.dumps(ATTRIBUTES))
        (d / "attr_translation_idx.json").write_text(json.dumps(INDEX))
    return d


@pytest.fixture
def cp_root(tmp_path: Path) -> Path:
    make_cp2108(tmp_path)
    return tmp_path


def _names(records) -> list:
    return [Path(r.path).name for r in records]


def test_records_views_time_and_relabelling(cp_root: Path) -> None:
    ds = build_dataset("CP2108", str(cp_root))
    assert ds.root == str(cp_root / "CP2108") and ds.pid_map == {("CP2108", 1): 0, ("CP2108", 2): 1}
    got = sorted((r.pid, r.camid, r.view, r.extras["time"], r.extras["scene"]) for r in ds.train)
    assert got == [(0, 4, "ground", 1, 3), (0, 24, "aerial", 0, 3), (1, 11, "ground", 1, 4),
                   (1, 30, "aerial", 1, 4)]
    assert rel_paths(ds.protocol("ALL").gallery, cp_root / "CP2108" / "images_v100") == GALLERY


def test_attributes_follow_svpr_lookup(cp_root: Path) -> None:
    ds = build_dataset("CP2108", str(cp_root))
    by_pid = {r.pid: r.extras for r in ds.protocol("AGAG").query}
    assert by_pid[10]["attributes"] == ATTRIBUTES["10_0_1"] and by_pid[10]["attribute_labels"] == (1, 1)
    assert by_pid[11]["attribute_labels"] == (0, 2)
    assert "attributes" not in by_pid[12]
    assert {r.extras["attribute_labels"] for r in ds.train if r.pid == 0} == {(1, 0)}


@pytest.mark.parametrize("name, query, gallery, rule", [
    ("ALL", [0, 1, 2, 4], [0, 1, 2, 3, 4], "market"),
    ("AG", [0, 2], [0, 2, 4], "market"),
    ("GA", [1], [1, 3], "market"),
    ("AA", [0, 4], [1, 3], "market"),
    ("GG", [1], [0, 2, 4], "market"),
    ("AGAG", [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], "market+cross_view"),
    ("AAGG", [0, 1, 2, 4], [0, 1, 2, 3, 4], "market+same_view"),
])
def test_protocols(cp_root: Path, name: str, query: list, gallery: list, rule: str) -> None:
    proto = build_dataset("CP2108", str(cp_root)).protocol(name)
    assert _names(proto.query) == [Path(QUERY[i]).name for i in query]
    assert _names(proto.gallery) == [Path(GALLERY[i]).name for i in gallery]
    assert proto.rule == rule
    if name == "AGAG":
        assert [r.camid for r in proto.query] == [1, 0, 1, 0, 1]
        assert [r.camid for r in proto.gallery] == [0, 1, 0, 1, 0]
    else:
        assert [r.camid for r in proto.query] == [int(Path(QUERY[i]).name.split("_")[1]) - 1 for i in query]
    assert -1 in {r.pid for r in proto.gallery} or name in ("GA", "AA")


def test_time_mode_and_version_options(tmp_path: Path) -> None:
    make_cp2108(tmp_path, version=7, attributes=False)
    ds = build_dataset("CP2108", str(tmp_path), version="7", time_mode="cross")
    assert ds.protocol("AG").rule == "market+cross_time"
    assert ds.protocol("AGAG").rule == "market+cross_view+cross_time"
    assert ds.protocol("ALL").options["time_mode"] == "cross"
    assert build_dataset("CP2108", str(tmp_path), version=7, time_mode="same").protocol("GG").rule == \
        "market+same_time"
    assert "attributes" not in ds.train[0].extras
    with pytest.raises(ValueError, match="time_mode"):
        build_dataset("CP2108", str(tmp_path), version=7, time_mode="dusk")


def test_errors_name_path_and_layout(cp_root: Path) -> None:
    d = cp_root / "CP2108"
    with pytest.raises(DatasetError, match=re.escape(str(cp_root / "missing"))) as info:
        build_dataset("CP2108", str(cp_root / "missing"))
    assert "split_v<V>" in str(info.value)
    with pytest.raises(DatasetError, match=re.escape(str(d / "split_v5"))):
        build_dataset("CP2108", str(cp_root), version=5)
    write_list(d / "split_v100" / "query_v100.txt", QUERY + ["query/person_1.jpg"])
    with pytest.raises(DatasetError, match=r"line 6 of .*query_v100\.txt.*person_1\.jpg"):
        build_dataset("CP2108", str(cp_root))
    write_list(d / "split_v100" / "query_v100.txt", ["", "  "])
    with pytest.raises(DatasetError, match=r"no images found in .*query_v100\.txt"):
        build_dataset("CP2108", str(cp_root))
    (d / "split_v100" / "query_v100.txt").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(d / "split_v100" / "query_v100.txt"))):
        build_dataset("CP2108", str(cp_root))
    write_list(d / "split_v100" / "query_v100.txt", QUERY)
    (d / "images_v100" / "gallery" / "0011_07_0_2_0008.jpg").unlink()
    with pytest.raises(DatasetError, match="0011_07_0_2_0008.jpg"):
        build_dataset("CP2108", str(cp_root))
    assert build_dataset("CP2108", str(cp_root), check_files=False).protocol("ALL").gallery
    (d / "attributes_labeled_qwen.json").write_text(json.dumps({"ten_0_1": {}}))
    with pytest.raises(DatasetError, match="ten_0_1"):
        build_dataset("CP2108", str(cp_root), check_files=False)
    shutil.rmtree(d / "images_v100")
    with pytest.raises(DatasetError, match=re.escape(str(d / "images_v100"))):
        build_dataset("CP2108", str(cp_root))
