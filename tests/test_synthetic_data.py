"""AGDemo: deterministic generation, the documented layout, protocols, and separable identities."""
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from agreid.data import DatasetError, build_dataset
from agreid.data.datasets.custom import read_csv_layout
from agreid.data.datasets.synthetic import AERIAL_CAMS, GROUND_CAMS, generate_agdemo, main

SMALL = dict(num_train_ids=3, num_test_ids=3, images_per_view=2)
CSV_FILES = {"train.csv", "A2G_query.csv", "A2G_gallery.csv", "G2A_query.csv", "G2A_gallery.csv"}


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return Path(generate_agdemo(str(tmp_path_factory.mktemp("small") / "AGDemo"), seed=0, **SMALL))


def test_layout_is_exactly_documented(small: Path) -> None:
    files = tree(small)
    images = [f for f in files if f.startswith("images")]
    assert set(files) - set(images) == CSV_FILES | {"agdemo.json"}
    assert len(images) == (3 + 3) * 2 * 2
    for name in images:
        split, fname = name.split(os.sep)[1:]
        match = re.fullmatch(r"(\d{4})_c(\d)_(\d{6})\.jpg", fname)
        assert split in ("train", "test") and match, name
        assert (int(match.group(1)) <= 3) == (split == "train")
    assert cv2.imread(str(small / images[0])).shape == (128, 64, 3)
    assert json.loads(files["agdemo.json"])["seed"] == 0
    assert files["train.csv"].decode().splitlines()[0] == "path,pid,camid,view,modality"
    assert os.listdir(small.parent) == ["AGDemo"]


def test_same_seed_same_bytes_other_seed_differs(small: Path, tmp_path: Path) -> None:
    again = tree(Path(generate_agdemo(str(tmp_path / "a" / "AGDemo"), seed=0, **SMALL)))
    assert again == tree(small)
    other = tree(Path(generate_agdemo(str(tmp_path / "b" / "AGDemo"), seed=1, **SMALL)))
    images = {b for f, b in again.items() if f.endswith(".jpg")}
    other_images = {b for f, b in other.items() if f.endswith(".jpg")}
    assert len(other) == len(again) and not images & other_images


def test_identities_do_not_depend_on_split_sizes(small: Path, tmp_path: Path) -> None:
    bigger = tree(Path(generate_agdemo(str(tmp_path / "AGDemo"), seed=0, num_train_ids=3, num_test_ids=5,
                                       images_per_view=2)))
    train = {f: b for f, b in tree(small).items() if f.startswith(os.path.join("images", "train"))}
    assert train and all(bigger[f] == b for f, b in train.items())


def test_regenerates_only_when_parameters_change(tmp_path: Path) -> None:
    out = tmp_path / "AGDemo"
    generate_agdemo(str(out), seed=0, **SMALL)
    marker = out / "agdemo.json"
    stamp = marker.stat().st_mtime_ns
    generate_agdemo(str(out), seed=0, **SMALL)
    assert marker.stat().st_mtime_ns == stamp
    generate_agdemo(str(out), seed=0, num_train_ids=2, num_test_ids=2, images_per_view=1)
    assert json.loads(marker.read_text())["num_train_ids"] == 2
    assert len(list((out / "images").rglob("*.jpg"))) == 8
    assert sorted(os.listdir(tmp_path)) == ["AGDemo"]


def test_refuses_to_replace_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "AGDemo").mkdir()
    (tmp_path / "AGDemo" / "mine.txt").write_text("user data")
    with pytest.raises(DatasetError, match="agdemo.json"):
        generate_agdemo(str(tmp_path / "AGDemo"), **SMALL)
    assert (tmp_path / "AGDemo" / "mine.txt").exists()


def test_adapter_protocols_views_and_labels(small: Path) -> None:
    ds = build_dataset("AGDemo", str(small.parent), seed=0, **SMALL)
    assert ds.root == str(small) and ds.name == "AGDemo"
    assert sorted({r.pid for r in ds.train}) == [0, 1, 2] and len(ds.train) == 12
    assert {r.view for r in ds.train} == {"aerial", "ground"}
    assert all((r.camid in AERIAL_CAMS) == (r.view == "aerial") for r in ds.train)
    assert all(r.camid in GROUND_CAMS + AERIAL_CAMS for r in ds.train)
    assert sorted(ds.protocols) == ["A2G", "G2A"]
    for name, query_view, gallery_view in (("A2G", "aerial", "ground"), ("G2A", "ground", "aerial")):
        proto = ds.protocol(name)
        assert proto.rule == "market"
        assert {r.view for r in proto.query} == {query_view}
        assert {r.view for r in proto.gallery} == {gallery_view}
        assert {r.pid for r in proto.query} == {r.pid for r in proto.gallery} == {4, 5, 6}
    assert set(ds.protocol("A2G").query) == set(ds.protocol("G2A").gallery)


def test_command_line(tmp_path: Path, capsys) -> None:
    main(["--out", str(tmp_path / "demo"), "--seed", "3", "--num-train-ids", "2", "--num-test-ids", "2",
          "--images-per-view", "1"])
    assert "4 train images" in capsys.readouterr().out
    train, protocols = read_csv_layout(str(tmp_path / "demo"))
    assert len(train) == 4 and len(protocols["A2G"].query) == 2


def colour_histogram(path: str) -> np.ndarray:
    """A grey-world-normalised HSV histogram of the saturated pixels in the image centre."""
    img = cv2.imread(path).astype(np.float32)
    img = np.clip(img / img.reshape(-1, 3).mean(0) * 110, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    hsv = cv2.cvtColor(img[int(0.15 * h):int(0.85 * h), int(0.3 * w):int(0.7 * w)], cv2.COLOR_BGR2HSV)
    mask = (hsv[..., 1] >= 60).astype(np.uint8)
    hist = np.sqrt(cv2.calcHist([hsv], [0, 1, 2], mask, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel())
    return hist / (np.linalg.norm(hist) + 1e-9)


def test_identities_are_separable_but_not_trivial(tmp_path: Path) -> None:
    ds = build_dataset("AGDemo", str(tmp_path), num_train_ids=1, num_test_ids=40, images_per_view=8)
    for name in ("A2G", "G2A"):
        proto = ds.protocol(name)
        q = np.stack([colour_histogram(r.path) for r in proto.query])
        g = np.stack([colour_histogram(r.path) for r in proto.gallery])
        qp, gp = np.array([r.pid for r in proto.query]), np.array([r.pid for r in proto.gallery])
        rank1 = float(np.mean(gp[np.argmax(q @ g.T, axis=1)] == qp))
        chance = float(np.mean([np.mean(gp == p) for p in qp]))
        print(f"{name}: colour-histogram nearest-neighbour rank-1 {rank1:.3f} (chance {chance:.3f})")
        assert 5 * chance < rank1 < 0.9
