"""G2APS_ReID adapter and scripts/build_g2aps_reid.py, run on a miniature fake G2APS person-search release."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
from scipy.io import savemat

from ag_image_helpers import REPO_ROOT, rel_paths, write_jpeg, write_list
from agreid.data import DatasetError, build_dataset
from agreid.data.opencv import cv2

FRAME_H, FRAME_W = 60, 80
PALETTE = [(20, 20, 220), (20, 220, 20), (220, 20, 20), (200, 200, 20)]
GROUND, DRONE = "S1_12", "D2_45"
# pid -> (camera prefix, frame) appearances; pid 6 is in neither id list
APPEARANCES = {
    1: [(GROUND, 1), (DRONE, 1)],
    2: [(GROUND, 2), (DRONE, 2)],
    3: [(GROUND, f) for f in range(1, 6)] + [(DRONE, f) for f in range(1, 6)],
    4: [(GROUND, 3), (GROUND, 4), (DRONE, 3), (DRONE, 4)],
    5: [(GROUND, 5)],
    6: [(GROUND, 1)],
}
UNLABELED = {(GROUND, 2): 2, (DRONE, 3): 1}
TRAIN_IDS, TEST_IDS = [1, 2], [3, 4, 5]


def _load_script():
    spec = importlib.util.spec_from_file_location("build_g2aps_reid",
                                                  os.path.join(REPO_ROOT, "scripts", "build_g2aps_reid.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _person_box(pid: int) -> Tuple[float, float, float, float]:
    return 2 + (pid - 1) * 12, 5, 10, 20


def _struct(rows: List[tuple], fields: List[str]) -> np.ndarray:
    arr = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for i, row in enumerate(rows):
        for f, value in zip(fields, row):
            arr[0, i][f] = value
    return arr


def make_fake_g2aps(base: Path) -> Path:
    """G2APS/Image/SSM frames plus CUHK-SYSU-style Images.mat / Person.mat for APPEARANCES."""
    g2aps = base / "G2APS"
    frames: Dict[Tuple[str, int], list] = {}
    for cam in (GROUND, DRONE):
        for f in range(1, 6):
            frames[(cam, f)] = []
    for pid, seen in APPEARANCES.items():
        for key in seen:
            frames[key].append(("person", pid))
    for key, count in UNLABELED.items():
        frames[key] += [("unlabeled", i) for i in range(count)]
    frames[(DRONE, 1)].append(("zero", 0))
    images, persons = [], {pid: [] for pid in APPEARANCES}
    for (cam, f), items in frames.items():
        name = f"{cam}_{f:06d}.jpg"
        canvas = np.full((FRAME_H, FRAME_W, 3), 128, dtype=np.uint8)
        boxes = []
        for kind, value in items:
            if kind == "person":
                x, y, w, h = _person_box(value)
                color = PALETTE[(f - 1) % 4] if value == 3 else (60 + 20 * value, 90, 30)
                persons[value].append((name, np.array([[x + 0.6, y, w, h]]),
                                       np.array([[0.0]])))
                boxes.append((np.array([[x + 0.3, y, w, h]]),))
            elif kind == "unlabeled":
                x, y, w, h = 2 + value * 12, 35, 10, 20
                color = (10, 10 + 100 * value, 250)
                boxes.append((np.array([[x, y, w, h]], dtype=float),))
            else:
                boxes.append((np.array([[70.0, 40, 0, 10]]),))
                continue
            canvas[y:y + h, x:x + w] = color
        (g2aps / "Image" / "SSM").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(g2aps / "Image" / "SSM" / name), canvas, [cv2.IMWRITE_JPEG_QUALITY, 100])
        images.append((name, np.array([[float(len(boxes))]]),
                       _struct(boxes, ["idlocate"])))
    (g2aps / "annotation").mkdir(parents=True)
    savemat(str(g2aps / "annotation" / "Images.mat"), {"Img": _struct(images, ["imname", "nAppear", "box"])})
    person_rows = [(f"p{pid}", np.array([[float(len(rows))]]),
                    _struct(rows, ["imname", "idlocate", "ishard"])) for pid, rows in sorted(persons.items())]
    savemat(str(g2aps / "annotation" / "Person.mat"),
            {"Person": _struct(person_rows, ["idname", "nAppear", "scene"])})
    write_list(base / "train_id.txt", [str(i) for i in TRAIN_IDS])
    write_list(base / "test_id.txt", [str(i) for i in TEST_IDS], newline="\r\n")
    return g2aps


def _run_build(tmp_path: Path, out: Path) -> Path:
    script = _load_script()
    code = script.main(["--g2aps", str(tmp_path / "G2APS"), "--train-ids", str(tmp_path / "train_id.txt"),
                        "--test-ids", str(tmp_path / "test_id.txt"), "--out", str(out)])
    assert code == 0
    return out / "G2APS-ReID"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Tuple[Path, Path]:
    base = tmp_path_factory.mktemp("g2aps")
    make_fake_g2aps(base)
    return base, _run_build(base, base / "data")


def _files(folder: Path) -> List[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))


def test_build_crops_split_and_distractors(built) -> None:
    _, out = built
    assert _files(out / "bounding_box_train") == [
        "1/0001_c0v2_000001.jpg", "1/0001_c3v1_000001.jpg",
        "2/0002_c0v2_000002.jpg", "2/0002_c3v1_000002.jpg"]
    assert _files(out / "bounding_box_test_c3") == (
        [f"3/0003_c3v1_{f:06d}.jpg" for f in range(1, 6)]
        + ["4/0004_c3v1_000003.jpg", "4/0004_c3v1_000004.jpg", "5/0005_c3v1_000005.jpg"])
    assert _files(out / "bounding_box_test_c0") == (
        [f"3/0003_c0v2_{f:06d}.jpg" for f in range(1, 6)]
        + ["4/0004_c0v2_000003.jpg", "4/0004_c0v2_000004.jpg"])
    assert (out / "bounding_box_test_c0" / "5").is_dir()
    assert _files(out / "bounding_box_gallery") == ["5555_c0v2_000003.jpg", "5555_c3v1_000002.jpg"]
    assert not list(out.rglob("0006_*"))
    crop = cv2.imread(str(out / "bounding_box_train" / "1" / "0001_c3v1_000001.jpg"))
    assert crop.shape[:2] == (20, 10)
    overwritten = cv2.imread(str(out / "bounding_box_gallery" / "5555_c3v1_000002.jpg"))
    assert abs(int(overwritten[10, 5, 1]) - 110) < 30


def test_build_kmeans_queries(built) -> None:
    _, out = built
    for cam, prefix in ((0, "0003_c0v2"), (3, "0003_c3v1")):
        chosen = _files(out / f"query_c{cam}" / "3")
        assert len(chosen) == 4 and all(name.startswith(prefix) for name in chosen)
        colours = {tuple(cv2.imread(str(out / f"query_c{cam}" / "3" / n))[10, 5] // 64) for n in chosen}
        assert len(colours) == 4
        assert _files(out / f"query_c{cam}" / "4") == [f"0004_c{cam}v{2 if cam == 0 else 1}_00000{f}.jpg"
                                                        for f in (3, 4)]
    assert _files(out / "query_c3" / "5") == ["0005_c3v1_000005.jpg"] and not _files(out / "query_c0" / "5")
    for q in out.glob("query_c*/*/*.jpg"):
        assert (out / f"bounding_box_test_{q.parts[-3][6:]}" / q.parts[-2] / q.name).is_file()


def test_build_protocol_lists(built) -> None:
    _, out = built
    exp3 = (out / "exp3_A2G+.txt").read_text().splitlines()
    queries = [line for line in exp3 if line.startswith("query_c0/")]
    assert len(queries) == 6 and exp3[:6] == queries
    assert [line for line in exp3 if line.startswith("bounding_box_test_")] == \
        [f"bounding_box_test_c3/{p}" for p in _files(out / "bounding_box_test_c3")]
    assert exp3[-1] == "bounding_box_gallery/5555_c3v1_000002.jpg"
    exp4 = (out / "exp4_G2A+.txt").read_text().splitlines()
    assert sum(line.startswith("query_c3/") for line in exp4) == 7
    assert exp4[-1] == "bounding_box_gallery/5555_c0v2_000003.jpg"
    assert not any(line.startswith("bounding_box_test_c3") for line in exp4)


def test_build_is_deterministic(built, tmp_path: Path) -> None:
    base, out = built
    again = _run_build(base, tmp_path / "again")
    for name in ("exp3_A2G+.txt", "exp4_G2A+.txt"):
        assert (again / name).read_text() == (out / name).read_text()


def test_adapter_loads_the_built_dataset(built) -> None:
    base, out = built
    ds = build_dataset("G2APS_ReID", str(base / "data"))
    assert ds.root == str(out) and ds.num_train_pids == 2
    assert sorted((r.pid, r.camid, r.view) for r in ds.train) == [
        (0, 0, "aerial"), (0, 1, "ground"), (1, 0, "aerial"), (1, 1, "ground")]
    a2g, g2a = ds.protocol("A2G"), ds.protocol("G2A")
    assert a2g.rule == g2a.rule == "market" and sorted(ds.protocols) == ["A2G", "G2A"]
    assert {(r.view, r.camid) for r in a2g.query} == {("aerial", 0)} and len(a2g.query) == 6
    assert {(r.view, r.camid) for r in a2g.gallery} == {("ground", 1)}
    assert sorted({r.pid for r in a2g.gallery}) == [3, 4, 5, 5555]
    assert [r.extras["distractor"] for r in a2g.gallery].count(True) == 1
    assert {r.view for r in g2a.query} == {"ground"} and {r.view for r in g2a.gallery} == {"aerial"}
    assert sorted({r.pid for r in g2a.query}) == [3, 4, 5]
    assert rel_paths(a2g.query, out) == (out / "exp3_A2G+.txt").read_text().splitlines()[:6]


def test_build_reports_missing_source(tmp_path: Path, capsys) -> None:
    write_list(tmp_path / "ids.txt", ["1"])
    ids = str(tmp_path / "ids.txt")
    code = _load_script().main(["--g2aps", str(tmp_path / "nowhere"), "--train-ids", ids, "--test-ids", ids,
                                "--out", str(tmp_path)])
    assert code == 1 and "Images.mat" in capsys.readouterr().err


Q_C0, G_C3 = "query_c0/12/0012_c0v1_000001.jpg", "bounding_box_test_c3/12/0012_c3v1_000002.jpg"
Q_C3, G_C0 = "query_c3/12/0012_c3v1_000002.jpg", "bounding_box_test_c0/12/0012_c0v1_000001.jpg"


@pytest.fixture
def secap_copy(tmp_path: Path) -> Path:
    """A hand-written GA-ReID/ tree (SeCap's folder name) with Windows-style list separators."""
    d = tmp_path / "GA-ReID"
    for name in ("0007/0007_c0v1_000010.jpg", "0007/0007_c3v2_000011.jpg", "0009/0009_c3v1_000012.jpg"):
        write_jpeg(d / "bounding_box_train" / name)
    windows = [p.replace("/", "\\") for p in (Q_C0, G_C3, "bounding_box_gallery/5555_c3v1_000003.jpg")]
    write_list(d / "exp3_A2G+.txt", windows, images_under=d, newline="\r\n")
    write_list(d / "exp4_G2A+.txt", [Q_C3, G_C0], images_under=d)
    return tmp_path


def test_adapter_accepts_ga_reid_folder_and_backslashes(secap_copy: Path) -> None:
    ds = build_dataset("G2APS_ReID", str(secap_copy))
    assert ds.pid_map == {("G2APS_ReID", 7): 0, ("G2APS_ReID", 9): 1}
    a2g = ds.protocol("A2G")
    assert [(r.pid, r.camid) for r in a2g.query] == [(12, 0)]
    assert [(r.pid, r.camid, r.extras["camera"]) for r in a2g.gallery] == [(12, 1, 3), (5555, 1, 3)]
    assert all(os.path.isfile(r.path) for r in a2g.gallery)
    only = build_dataset("G2APS_ReID", str(secap_copy), protocols="G2A")
    assert list(only.protocols) == ["G2A"]


def test_adapter_errors(secap_copy: Path) -> None:
    d = secap_copy / "GA-ReID"
    with pytest.raises(DatasetError, match=re.escape(str(secap_copy / "G2APS-ReID"))):
        build_dataset("G2APS_ReID", str(secap_copy), dataset_dir="G2APS-ReID")
    with pytest.raises(DatasetError, match="data root"):
        build_dataset("G2APS_ReID", str(secap_copy / "missing"))
    (d / "exp4_G2A+.txt").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(d / "exp4_G2A+.txt"))):
        build_dataset("G2APS_ReID", str(secap_copy))
    write_list(d / "exp4_G2A+.txt", [Q_C3, "bounding_box_test_c0/12/person.jpg"])
    with pytest.raises(DatasetError, match=r"line 2 of .*exp4_G2A\+\.txt.*person\.jpg") as info:
        build_dataset("G2APS_ReID", str(secap_copy))
    assert "Expected layout" in str(info.value)
    write_list(d / "exp4_G2A+.txt", [G_C0])
    with pytest.raises(DatasetError, match="no query lines"):
        build_dataset("G2APS_ReID", str(secap_copy))
    write_list(d / "exp4_G2A+.txt", ["query_c3/12/0012_c3v1_000099.jpg", G_C0])
    with pytest.raises(DatasetError, match="0012_c3v1_000099.jpg"):
        build_dataset("G2APS_ReID", str(secap_copy))
    shutil.rmtree(d / "bounding_box_train")
    with pytest.raises(DatasetError, match=re.escape(str(d / "bounding_box_train"))):
        build_dataset("G2APS_ReID", str(secap_copy))
