"""LAGPeR adapter on a miniature copy of its layout: train folder, protocol lists, cameras, views, errors."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ag_image_helpers import rel_paths, write_jpeg, write_list
from agreid.data import DatasetError, build_dataset

A2G = ["query_aerial/0100/0100_c16_0001.jpg", "query_aerial/0101/0101_c22_0002.jpg",
       "bounding_box_test/0100/0100_c14_0003.jpg", "bounding_box_test/0101/0101_c20_0004.jpg",
       "bounding_box_test/-1/-1_c21_0005.jpg"]
G2A = ["query_ground/0100/0100_c14_0003.jpg", "bounding_box_test/0100/0100_c16_0006.jpg",
       "bounding_box_test/0101/0101_c19_0007.jpg"]
G2AG = ["query/0100/0100_c14_0003.jpg", "bounding_box_test/0100/0100_c16_0006.jpg",
        "bounding_box_test/0100/0100_c15_0008.jpg", "bounding_box_test/0101/0101_c20_0004.jpg"]


@pytest.fixture
def lagper_root(tmp_path: Path) -> Path:
    d = tmp_path / "LAGPeR"
    for name in ("0001/0001_c1_0001.jpg", "0001/0001_c3_0002.jpg", "0002/0002_c11_0003.jpg",
                 "0002/0002_c13_0004.jpg", "junk/-1_c2_0005.jpg"):
        write_jpeg(d / "bounding_box_train" / name)
    write_jpeg(d / "bounding_box_train" / "0003_c4_top_level.jpg")
    write_jpeg(d / "bounding_box_train" / "0001" / "deeper" / "0004_c5_0006.jpg")
    write_list(d / "exp3_A2G+.txt", A2G, images_under=d)
    write_list(d / "exp4_G2A+.txt", G2A, images_under=d)
    write_list(d / "exp5_G2A+G.txt", G2AG, images_under=d)
    (d / "exp5_G2A+G.txt").write_text("\n".join(G2AG) + "\n\n")
    (d / "exp4_G2A+.txt").write_text("\n".join(G2A))
    return tmp_path


def test_train_records_cameras_views_and_relabelling(lagper_root: Path) -> None:
    ds = build_dataset("LAGPeR", str(lagper_root))
    assert ds.root == str(lagper_root / "LAGPeR") and ds.num_train_pids == 2
    assert ds.pid_map == {("LAGPeR", 1): 0, ("LAGPeR", 2): 1}
    got = sorted((r.pid, r.camid, r.view, r.extras["camera"]) for r in ds.train)
    assert got == [(0, 1, "ground", 1), (0, 3, "aerial", 3), (1, 10, "ground", 11), (1, 12, "aerial", 13)]
    assert ds.num_train_cams == 4


def test_protocols_query_gallery_and_rule(lagper_root: Path) -> None:
    ds = build_dataset("LAGPeR", str(lagper_root))
    base = lagper_root / "LAGPeR"
    assert sorted(ds.protocols) == ["A2G", "G2A", "G2AG"]
    assert all(p.rule == "market" for p in ds.protocols.values())
    a2g = ds.protocol("A2G")
    assert rel_paths(a2g.query, base) == A2G[:2] and rel_paths(a2g.gallery, base) == A2G[2:]
    assert [(r.pid, r.camid, r.view) for r in a2g.query] == [(100, 15, "aerial"), (101, 21, "aerial")]
    assert [(r.pid, r.camid, r.view) for r in a2g.gallery] == [
        (100, 13, "ground"), (101, 19, "ground"), (-1, 20, "ground")]
    g2a = ds.protocol("G2A")
    assert rel_paths(g2a.query, base) == G2A[:1] and {r.view for r in g2a.gallery} == {"aerial"}
    g2ag = ds.protocol("G2AG")
    assert [r.view for r in g2ag.query] == ["ground"]
    assert [r.view for r in g2ag.gallery] == ["aerial", "ground", "ground"]


def test_flat_root_and_protocol_subset(lagper_root: Path) -> None:
    flat = lagper_root / "flat"
    shutil.move(str(lagper_root / "LAGPeR"), str(flat))
    (flat / "exp3_A2G+.txt").unlink()
    ds = build_dataset("LAGPeR", str(flat), protocols="G2A, G2AG")
    assert sorted(ds.protocols) == ["G2A", "G2AG"] and ds.root == str(flat)
    with pytest.raises(ValueError, match="A2X"):
        build_dataset("LAGPeR", str(flat), protocols=["A2X"])


def test_errors_name_path_and_layout(lagper_root: Path) -> None:
    d = lagper_root / "LAGPeR"
    with pytest.raises(DatasetError, match="data root") as info:
        build_dataset("LAGPeR", str(lagper_root / "missing"))
    assert "exp5_G2A+G.txt" in str(info.value)
    (d / "exp3_A2G+.txt").write_text("query_aerial/0100/0100_c16_0001.jpg\nbounding_box_test/x/person.jpg\n")
    with pytest.raises(DatasetError, match=r"line 2 of .*exp3_A2G\+\.txt"):
        build_dataset("LAGPeR", str(lagper_root))
    (d / "exp3_A2G+.txt").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(d / "exp3_A2G+.txt"))):
        build_dataset("LAGPeR", str(lagper_root))
    (d / "exp4_G2A+.txt").write_text("bounding_box_test/0100/0100_c16_0006.jpg\n")
    with pytest.raises(DatasetError, match="no query lines"):
        build_dataset("LAGPeR", str(lagper_root), protocols="G2A")
    (d / "bounding_box_test" / "0101" / "0101_c20_0004.jpg").unlink()
    with pytest.raises(DatasetError, match="0101_c20_0004.jpg"):
        build_dataset("LAGPeR", str(lagper_root), protocols="G2AG")
    assert build_dataset("LAGPeR", str(lagper_root), protocols="G2AG", check_files="false").protocols
    for path in (d / "bounding_box_train").rglob("*.jpg"):
        if not path.name.startswith("-1"):
            path.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(d / "bounding_box_train"))):
        build_dataset("LAGPeR", str(lagper_root), protocols="G2AG", check_files=False)
    shutil.rmtree(d / "bounding_box_train")
    with pytest.raises(DatasetError, match=re.escape(str(d / "bounding_box_train"))):
        build_dataset("LAGPeR", str(lagper_root))
