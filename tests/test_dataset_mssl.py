"""MSSL on a miniature copy of its real layout: ids, 0-based cameras, sky/ground views, junk, distractors, protocols."""
import os
import re
import shutil
from pathlib import Path
from typing import List

import numpy as np
import pytest

from agreid.data import DatasetError, build_dataset
from agreid.data.opencv import cv2


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((16, 8, 3), 120, dtype=np.uint8))


def mssl_name(pid: str, cam: int, index: int) -> str:
    return f"{pid}_0909am_3_G003_c{cam:02d}_p{pid}_p0115_{index:02d}.jpg"


FILES = {
    "bounding_box_train": [mssl_name("0065", 1, 0), mssl_name("0065", 5, 1), mssl_name("0012", 14, 2),
                           mssl_name("0012", 7, 3), mssl_name("-1", 2, 4)],
    "bounding_box_test": [mssl_name("0500", 2, 0), mssl_name("0500", 4, 1), mssl_name("0500", 9, 2),
                          mssl_name("0501", 13, 3), mssl_name("0501", 15, 4), mssl_name("9999", 10, 5),
                          mssl_name("-1", 3, 6)],
    "query": [mssl_name("0500", 4, 7), mssl_name("0501", 11, 8)],
    "query_air": [mssl_name("0500", 4, 7), mssl_name("0501", 15, 9)],
    "query_ground": [mssl_name("0500", 2, 10), mssl_name("0501", 11, 8), mssl_name("-1", 1, 11)],
}


@pytest.fixture
def mssl_root(tmp_path: Path) -> Path:
    for folder, names in FILES.items():
        for name in names:
            write_image(tmp_path / "MSSL" / folder / name)
    return tmp_path


def names(records) -> List[str]:
    return [os.path.basename(r.path) for r in records]


def test_train_ids_cameras_views(mssl_root: Path) -> None:
    ds = build_dataset("MSSL", str(mssl_root))
    assert ds.root == str(mssl_root / "MSSL")
    assert ds.pid_map == {("MSSL", 12): 0, ("MSSL", 65): 1}
    got = {os.path.basename(r.path): (r.pid, r.camid, r.view) for r in ds.train}
    assert got == {mssl_name("0065", 1, 0): (1, 0, "ground"), mssl_name("0065", 5, 1): (1, 4, "aerial"),
                   mssl_name("0012", 14, 2): (0, 13, "aerial"), mssl_name("0012", 7, 3): (0, 6, "ground")}
    rec = ds.train[0]
    assert rec.extras == {"capture_time": "0909am", "height_level": "3", "group": "G003"}


def test_protocols_queries_gallery_and_rules(mssl_root: Path) -> None:
    ds = build_dataset("MSSL", str(mssl_root))
    assert sorted(ds.protocols) == ["DDC", "G2S", "S2G"]
    gallery = names(ds.protocol("DDC").gallery)
    assert gallery == FILES["bounding_box_test"][:6]
    assert ds.protocol("S2G").gallery == ds.protocol("G2S").gallery == ds.protocol("DDC").gallery
    assert {r.pid for r in ds.protocol("DDC").gallery} == {500, 501, 9999}
    expected = {"S2G": ("query_air", "mssl_s2g"), "G2S": ("query_ground", "mssl_g2s"), "DDC": ("query", "market")}
    for proto, (folder, rule) in expected.items():
        p = ds.protocol(proto)
        assert p.rule == rule
        assert names(p.query) == sorted(n for n in FILES[folder] if not n.startswith("-1"))
    assert {r.view for r in ds.protocol("S2G").query} == {"aerial"}
    assert {r.view for r in ds.protocol("G2S").query} == {"ground"}
    assert [(r.pid, r.camid) for r in ds.protocol("DDC").query] == [(500, 3), (501, 10)]
    sky = {r.camid for r in ds.protocol("DDC").gallery if r.view == "aerial"}
    assert sky == {3, 8, 14, 9}


def test_errors(mssl_root: Path) -> None:
    data = mssl_root / "MSSL"
    with pytest.raises(DatasetError, match=re.escape(str(mssl_root / "other"))):
        build_dataset("MSSL", str(mssl_root), dataset_dir="other")
    bad = data / "query" / "0500_0909am_3_G003_c16_p0500_00.jpg"
    write_image(bad)
    with pytest.raises(DatasetError, match=re.escape(str(bad))) as info:
        build_dataset("MSSL", str(mssl_root))
    assert "query_air/" in str(info.value)
    bad.unlink()
    short = data / "query" / "0500_c05.jpg"
    write_image(short)
    with pytest.raises(DatasetError, match="0500_c05.jpg"):
        build_dataset("MSSL", str(mssl_root))
    short.unlink()
    shutil.rmtree(data / "query_air")
    with pytest.raises(DatasetError, match=re.escape(str(data / "query_air"))):
        build_dataset("MSSL", str(mssl_root))
    (data / "query_air").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        build_dataset("MSSL", str(mssl_root))
    write_image(data / "query_air" / mssl_name("-1", 4, 0))
    with pytest.raises(DatasetError, match="only junk"):
        build_dataset("MSSL", str(mssl_root))
