"""CARGO adapter on a miniature copy of its layout: Cam1..Cam13 folders, views, day/night, four protocols."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from ag_image_helpers import write_jpeg
from agreid.data import DatasetError, build_dataset

TRAIN = ["Cam1/Cam1_day_0001_10.jpg", "Cam7/Cam7_night_0001_11.jpg", "Cam5/Cam5_night_0002_12.jpg",
         "Cam13/Cam13_day_0002_13.jpg"]
QUERY = ["Cam2/Cam2_day_2519_320.jpg", "Cam8/Cam8_night_2519_321.jpg", "Cam9/Cam9_day_2600_1.jpg"]
GALLERY = ["Cam3/Cam3_day_2519_400.jpg", "Cam2/Cam2_night_2519_401.jpg", "Cam10/Cam10_day_2519_402.jpg",
           "Cam11/Cam11_day_2600_403.jpg", "Cam4/Cam4_day_2600_404.jpg"]


@pytest.fixture
def cargo_root(tmp_path: Path) -> Path:
    d = tmp_path / "CARGO"
    for split, names in (("train", TRAIN), ("query", QUERY), ("gallery", GALLERY)):
        for name in names:
            write_jpeg(d / split / name)
    write_jpeg(d / "train" / "Cam14" / "Cam14_day_0003_1.jpg")
    (d / "train" / "Cam1" / "notes.txt").write_text("ignored")
    return tmp_path


def _summary(records) -> list:
    return [(r.pid, r.camid, r.view, r.extras["time"]) for r in records]


def test_train_records_and_relabelling(cargo_root: Path) -> None:
    ds = build_dataset("CARGO", str(cargo_root))
    assert ds.root == str(cargo_root / "CARGO") and ds.pid_map == {("CARGO", 1): 0, ("CARGO", 2): 1}
    assert sorted(_summary(ds.train)) == [(0, 0, "aerial", 1), (0, 6, "ground", 0), (1, 4, "aerial", 0),
                                          (1, 12, "ground", 1)]
    assert sorted(ds.protocols) == ["A2A", "A2A_svpr", "A2G", "A2G_secap", "A2G_svpr", "AGAG_svpr", "ALL",
                                    "G2A_secap", "G2A_svpr", "G2G", "G2G_svpr"]
    special = {"A2G": "market_view", "AGAG_svpr": "market+cross_view"}
    assert {n: p.rule for n, p in ds.protocols.items()} == {n: special.get(n, "market") for n in ds.protocols}


def test_protocols(cargo_root: Path) -> None:
    ds = build_dataset("CARGO", str(cargo_root))
    every = ds.protocol("ALL")
    assert _summary(every.query) == [(2519, 1, "aerial", 1), (2519, 7, "ground", 0), (2600, 8, "ground", 1)]
    assert sorted(r.extras["camera"] for r in every.gallery) == [2, 3, 4, 10, 11]
    a2g = ds.protocol("A2G")
    # VDT's A<->G: whole query and gallery, real camera ids, same-pid same-view items removed by the rule
    assert a2g.query == every.query and a2g.gallery == every.gallery
    assert [r.extras["camera"] for r in a2g.query] == [2, 8, 9]
    a2a, g2g = ds.protocol("A2A"), ds.protocol("G2G")
    assert {r.view for r in a2a.query + a2a.gallery} == {"aerial"} and len(a2a.query) == 1
    assert len(a2a.gallery) == 3 and {r.camid for r in a2a.gallery} == {1, 2, 3}
    assert {r.view for r in g2g.query + g2g.gallery} == {"ground"}
    assert [r.pid for r in g2g.query] == [2519, 2600] and len(g2g.gallery) == 2


def test_secap_protocols(cargo_root: Path) -> None:
    """SeCap's CARGO_AG / CARGO_GA: one view of query/ against the other view of gallery/, nothing removed."""
    ds = build_dataset("CARGO", str(cargo_root))
    a2g, g2a = ds.protocol("A2G_secap"), ds.protocol("G2A_secap")
    assert [(r.pid, r.camid, r.extras["camera"]) for r in a2g.query] == [(2519, 1, 2)]
    assert sorted((r.pid, r.camid) for r in a2g.gallery) == [(2519, 9), (2600, 10)]
    assert [(r.pid, r.camid) for r in g2a.query] == [(2519, 7), (2600, 8)]
    assert sorted((r.pid, r.camid) for r in g2a.gallery) == [(2519, 1), (2519, 2), (2600, 3)]
    assert {r.view for r in a2g.query + g2a.gallery} == {"aerial"}
    assert {r.view for r in a2g.gallery + g2a.query} == {"ground"}
    for proto in (a2g, g2a):  # cross-view only: no gallery item shares a query's (pid, camid)
        assert not {(q.pid, q.camid) for q in proto.query} & {(g.pid, g.camid) for g in proto.gallery}
        assert proto.rule == "market"


def _paths(records) -> list:
    return sorted(Path(r.path).name for r in records)


def test_svpr_protocols(cargo_root: Path) -> None:
    """SVPR-ReID's CARGO_AG / _GA / _AA / _GG keep queries whose pid the one-view gallery holds; _AGAG mixes all."""
    write_jpeg(cargo_root / "CARGO" / "query" / "Cam1" / "Cam1_day_2700_5.jpg")  # aerial, pid absent from gallery
    ds = build_dataset("CARGO", str(cargo_root))
    assert "Cam1_day_2700_5.jpg" in _paths(ds.protocol("ALL").query + ds.protocol("A2G_secap").query)
    expected = {
        "A2G_svpr": (["Cam2_day_2519_320.jpg"], ["Cam10_day_2519_402.jpg", "Cam11_day_2600_403.jpg"]),
        "G2A_svpr": (["Cam8_night_2519_321.jpg", "Cam9_day_2600_1.jpg"],
                     ["Cam2_night_2519_401.jpg", "Cam3_day_2519_400.jpg", "Cam4_day_2600_404.jpg"]),
        "A2A_svpr": (["Cam2_day_2519_320.jpg"],
                     ["Cam2_night_2519_401.jpg", "Cam3_day_2519_400.jpg", "Cam4_day_2600_404.jpg"]),
        "G2G_svpr": (["Cam8_night_2519_321.jpg", "Cam9_day_2600_1.jpg"],
                     ["Cam10_day_2519_402.jpg", "Cam11_day_2600_403.jpg"]),
    }
    for name, (query, gallery) in expected.items():
        proto = ds.protocol(name)
        assert (_paths(proto.query), _paths(proto.gallery)) == (query, gallery), name
        assert {r.camid for r in proto.query + proto.gallery} == {r.extras["camera"] - 1 for r in proto.query +
                                                                  proto.gallery}
    agag = ds.protocol("AGAG_svpr")
    assert _paths(agag.query) == _paths(ds.protocol("ALL").query) and len(agag.gallery) == len(GALLERY)
    assert {(r.view, r.camid) for r in agag.query + agag.gallery} == {("aerial", 1), ("ground", 0)}
    assert agag.rule == "market+cross_view"


def test_svpr_captions(cargo_root: Path) -> None:
    """SVPR gives every CARGO image one caption and no attribute labels; views ground 0 / aerial 1."""
    from agreid.data.common import ReIDImageSet, collate_batch

    ds = build_dataset("CARGO", str(cargo_root), captions="svpr")
    assert ds.attribute_classes == ()
    caption = "A photo of a X X X X  person. Attributes are not available."
    records = ds.train + list(ds.protocol("ALL").query) + list(ds.protocol("AGAG_svpr").gallery)
    assert {r.extras["caption"] for r in records} == {caption}
    batch = collate_batch([ReIDImageSet(ds.train)[i] for i in range(len(ds.train))])
    # token ids of the caption from SVPR-ReID's own tokenizer (context length 100)
    ref = [49406, 320, 1125, 539, 320, 343, 343, 343, 343, 2533, 269, 40763, 631, 783, 1685, 269, 49407]
    assert batch["captions"].tolist() == [ref + [0] * 83] * 4
    assert batch["attribute_labels"].shape == (4, 0) and batch["attribute_labels"].dtype == torch.int64
    assert batch["svpr_views"].tolist() == [int(r.view == "aerial") for r in ds.train]
    assert "captions" not in ReIDImageSet(build_dataset("CARGO", str(cargo_root)).train)[0]


def test_errors_name_path_and_layout(cargo_root: Path) -> None:
    d = cargo_root / "CARGO"
    with pytest.raises(DatasetError, match=re.escape(str(cargo_root / "other"))) as info:
        build_dataset("CARGO", str(cargo_root), dataset_dir="other")
    assert "Cam<N>_<day|night>_<pid>_<index>.jpg" in str(info.value)
    bad = write_jpeg(d / "gallery" / "Cam3" / "Cam3_dusk_2519_9.jpg")
    with pytest.raises(DatasetError, match="Cam3_dusk_2519_9.jpg"):
        build_dataset("CARGO", str(cargo_root))
    bad.unlink()
    for path in (d / "query").rglob("*.jpg"):
        path.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(d / "query"))):
        build_dataset("CARGO", str(cargo_root))
    shutil.rmtree(d / "query")
    with pytest.raises(DatasetError, match=re.escape(str(d / "query"))):
        build_dataset("CARGO", str(cargo_root))
    with pytest.raises(DatasetError, match="data root"):
        build_dataset("CARGO", str(cargo_root / "nowhere"))
