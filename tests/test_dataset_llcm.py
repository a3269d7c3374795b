"""LLCM on a miniature copy of the real layout: train lists, both test directions, reference draws and errors."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from agreid.data import INFRARED, VISIBLE, build_dataset
from vi_helpers import expect_error, reference_listing, reference_single_shot, write_image

VIS_CAMS = [f"test_vis/cam{k}" for k in range(1, 10)]
NIR_CAMS = [f"test_nir/cam{k}" for k in (1, 2, 4, 5, 6, 7, 8, 9)]
TEST_IDS = "22,20,21"
# (test folder, pid) -> number of images; cam3 NIR and id 99 are on disk but outside the protocol.
TEST_IMAGES: Dict[Tuple[str, int], int] = {
    ("test_vis/cam1", 20): 3, ("test_vis/cam3", 20): 2, ("test_vis/cam9", 20): 4,
    ("test_vis/cam2", 21): 5, ("test_vis/cam4", 21): 1, ("test_vis/cam1", 22): 2, ("test_vis/cam7", 22): 3,
    ("test_nir/cam1", 20): 2, ("test_nir/cam2", 20): 3, ("test_nir/cam4", 21): 4, ("test_nir/cam9", 21): 2,
    ("test_nir/cam1", 22): 3, ("test_nir/cam3", 22): 2, ("test_vis/cam2", 99): 2,
}
# (modality folder, pid, camera) -> number of training images
TRAIN_IMAGES = {("vis", 1, 1): 2, ("vis", 2, 4): 1, ("vis", 6, 3): 2,
                ("nir", 1, 2): 2, ("nir", 2, 4): 1, ("nir", 6, 1): 1}
TRAIN_LABELS = {1: 0, 2: 1, 6: 2}



def image_name(folder: str, pid: int, i: int) -> str:
    cam = int(folder.split("cam")[1])
    kind = folder.split("_")[1].split("/")[0]
    return f"{pid:04d}_c{cam:02d}_s18{i:04d}_f{100 + i}_{kind}.jpg"


def make_llcm(root: Path) -> Path:
    data = root / "LLCM"
    for (folder, pid), count in TEST_IMAGES.items():
        for i in range(count):
            write_image(data / folder / f"{pid:04d}" / image_name(folder, pid, i), pid + i)
    lists: Dict[str, List[str]] = {"vis": [], "nir": []}
    for (kind, pid, cam), count in TRAIN_IMAGES.items():
        for i in range(count):
            rel = f"{kind}/{pid:04d}/{pid:04d}_c{cam:02d}_s1{i:05d}_f{i}_{kind}.jpg"
            write_image(data / rel, pid)
            lists[kind].append(f"{rel} {TRAIN_LABELS[pid]}")
    (data / "idx").mkdir(parents=True)
    for kind, lines in lists.items():
        (data / "idx" / f"train_{kind}.txt").write_text("\n".join(lines) + "\n")
    (data / "idx" / "test_id.txt").write_text(TEST_IDS + "\n")
    return data




@pytest.fixture
def llcm_root(tmp_path: Path) -> Path:
    make_llcm(tmp_path)
    return tmp_path


def test_train_records_and_relabelling(llcm_root: Path) -> None:
    ds = build_dataset("LLCM", str(llcm_root))
    assert ds.name == "LLCM" and ds.root == str(llcm_root / "LLCM")
    assert ds.num_train_pids == 3 and len(ds.train) == sum(TRAIN_IMAGES.values())
    seen = set()
    for r in ds.train:
        kind, folder = Path(r.path).parts[-3:-1]
        seen.add((kind, int(folder), r.camid))
        assert r.pid == TRAIN_LABELS[int(folder)]
        assert r.modality == (VISIBLE if kind == "vis" else INFRARED)
    assert seen == set(TRAIN_IMAGES)


def test_protocol_sets_cameras_and_rules(llcm_root: Path) -> None:
    data = llcm_root / "LLCM"
    ds = build_dataset("LLCM", str(llcm_root))
    assert sorted(ds.protocols) == ["IR2VIS", "VIS2IR"]
    for proto in ds.protocols.values():
        assert proto.rule == "market" and proto.cmc == "unique_ids" and len(proto.trials) == 10
        assert [r.path for r in proto.query] == reference_listing(data, NIR_CAMS, TEST_IDS)
        assert [r.path for r in proto.gallery] == reference_listing(data, VIS_CAMS, TEST_IDS)
        assert all(r.modality == INFRARED for r in proto.query)
        assert all(r.modality == VISIBLE for r in proto.gallery)
        assert {r.pid for r in proto.query} == {r.pid for r in proto.gallery} == {20, 21, 22}
        assert 3 not in {r.camid for r in proto.query}
        assert {r.camid for r in proto.gallery} == {1, 2, 3, 4, 7, 9}
        for r in proto.query + proto.gallery:
            assert r.camid == int(Path(r.path).parts[-3][3:]) and r.pid == int(Path(r.path).parts[-2])
    assert ds.protocol("IR2VIS").options["single_shot"] == "gallery"
    assert ds.protocol("VIS2IR").options["single_shot"] == "query"


def test_ir2vis_trials_draw_the_visible_gallery_like_the_reference(llcm_root: Path) -> None:
    proto = build_dataset("LLCM", str(llcm_root)).protocol("IR2VIS")
    for trial, (query_idx, gallery_idx) in enumerate(proto.trials):
        assert query_idx is None
        assert [proto.gallery[i].path for i in gallery_idx] == reference_single_shot(
            llcm_root / "LLCM", VIS_CAMS, trial, TEST_IDS)
    assert len({t[1] for t in proto.trials}) > 1


def test_vis2ir_trials_draw_the_nir_probes_like_the_reference(llcm_root: Path) -> None:
    proto = build_dataset("LLCM", str(llcm_root)).protocol("VIS2IR")
    for trial, (query_idx, gallery_idx) in enumerate(proto.trials):
        assert gallery_idx is None
        probes = [proto.query[i] for i in query_idx]
        assert [r.path for r in probes] == reference_single_shot(llcm_root / "LLCM", NIR_CAMS, trial, TEST_IDS)
        assert len({(r.pid, r.camid) for r in probes}) == len(probes) == 5
    assert len({t[0] for t in proto.trials}) > 1


def test_num_trials_option(llcm_root: Path) -> None:
    full = build_dataset("LLCM", str(llcm_root)).protocol("VIS2IR").trials
    assert build_dataset("LLCM", str(llcm_root), num_trials=2).protocol("VIS2IR").trials == full[:2]


def _error(root: Path, *fragments: str, **options) -> str:
    return expect_error("LLCM", root, *fragments, **options)


def test_missing_root_shows_layout(tmp_path: Path) -> None:
    _error(tmp_path, str(tmp_path / "LLCM"), "idx/train_vis.txt", "test_nir/cam1")


@pytest.mark.parametrize("name", ["train_nir.txt", "test_id.txt"])
def test_missing_list_file(llcm_root: Path, name: str) -> None:
    os.remove(llcm_root / "LLCM" / "idx" / name)
    _error(llcm_root, str(llcm_root / "LLCM" / "idx" / name), "Expected layout")


def test_missing_test_folder(llcm_root: Path) -> None:
    os.rename(llcm_root / "LLCM" / "test_vis", llcm_root / "LLCM" / "test_rgb")
    _error(llcm_root, str(llcm_root / "LLCM" / "test_vis"))


def test_malformed_train_line(llcm_root: Path) -> None:
    path = llcm_root / "LLCM" / "idx" / "train_vis.txt"
    path.write_text("vis/0001/0001_c01_s100000_f0_vis.jpg\n")
    _error(llcm_root, str(path), "line 1")


def test_unparsable_train_file_name(llcm_root: Path) -> None:
    write_image(llcm_root / "LLCM" / "nir" / "0001" / "frame.jpg")
    path = llcm_root / "LLCM" / "idx" / "train_nir.txt"
    path.write_text(path.read_text() + "nir/0001/frame.jpg 0\n")
    _error(llcm_root, "frame.jpg", "<pid>_c<cam>_")


def test_bad_file_in_a_test_folder(llcm_root: Path) -> None:
    bad = llcm_root / "LLCM" / "test_nir" / "cam4" / "0021" / "notes.txt"
    bad.write_text("x")
    _error(llcm_root, str(bad))


def test_empty_test_split(llcm_root: Path) -> None:
    (llcm_root / "LLCM" / "idx" / "test_id.txt").write_text("500,501\n")
    _error(llcm_root, "no test images", "test_nir")
