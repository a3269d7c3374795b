"""AGReID (v1) and AGReIDv2 on miniature copies of their real layouts: ids, views, attributes, protocols, errors."""
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pytest
from scipy.io import savemat

from agreid.data import DatasetError, build_dataset
from agreid.data.datasets.agreid_v1 import ATTRIBUTE_GROUPS
from agreid.data.opencv import cv2

COLUMNS = [f"{group}_{k}" for group, n in ATTRIBUTE_GROUPS for k in range(n)]


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((16, 8, 3), 90, dtype=np.uint8)
    assert cv2.imwrite(str(path), img)


def composite(name: str) -> int:
    person, stamp, altitude = re.match(r"P(\d+)T(\d+)A(\d+)", name).groups()
    return int(person + stamp + altitude)


def attribute_row(pid: int) -> List[int]:
    """Stored values 1/2: one '2' per one-hot group, chosen from the pid so rows differ."""
    row = []
    for _, n in ATTRIBUTE_GROUPS:
        row += [2 if k == pid % n else 1 for k in range(n)]
    return row


def write_attribute_mat(path: Path, train_ids: Sequence[int], test_ids: Sequence[int]) -> None:
    tables: Dict[str, dict] = {}
    for part, ids in (("train", train_ids), ("test", test_ids)):
        table = {"image_index": np.array([[float(i)] for i in ids])}
        rows = np.array([attribute_row(i) for i in ids], dtype=float)
        for c, col in enumerate(COLUMNS):
            table[col] = rows[:, c:c + 1]
        tables[part] = table
    savemat(str(path), {"qut_attribute": tables})


V1_FILES = {
    "bounding_box_train": ["P0001T04041A0C0F0031.jpg", "P0001T04041A0C3F0032.jpg", "P0001T04041A1C0F0040.jpg",
                           "P0002T03220A2C3F0007.jpg", "P0002T03220A2C0F0009.jpg"],
    "query_all_c0": ["P0100T05121A0C0F0101.jpg", "P0101T05120A1C0F0102.jpg"],
    "query_all_c3": ["P0100T05121A0C3F0201.jpg", "P0102T05121A2C3F0202.jpg"],
    "bounding_box_test_all_c0": ["P0100T05121A0C0F0301.jpg", "P0102T05121A2C0F0302.jpg",
                                 "P0103T05121A0C0F0303.jpg"],
    "bounding_box_test_all_c3": ["P0100T05121A0C3F0401.jpg", "P0101T05120A1C3F0402.jpg"],
}
TRAIN_IDS = [1040410, 1040411, 2032202]
TEST_IDS = [100051210, 101051201, 102051212, 103051210]


@pytest.fixture
def v1_root(tmp_path: Path) -> Path:
    data = tmp_path / "AG-ReID"
    for folder, names in V1_FILES.items():
        for name in names:
            write_image(data / folder / name)
    (data / "bounding_box_train" / "Thumbs.db").write_bytes(b"")
    write_attribute_mat(data / "qut_attribute_v4_88_attributes.mat", TRAIN_IDS, TEST_IDS)
    return tmp_path


def names(records) -> List[str]:
    return [os.path.basename(r.path) for r in records]


def test_v1_train_ids_cameras_views_and_attributes(v1_root: Path) -> None:
    ds = build_dataset("AGReID", str(v1_root))
    assert ds.root == str(v1_root / "AG-ReID")
    assert sorted(composite(n) for n in V1_FILES["bounding_box_train"]) == sorted(
        [1040410, 1040410, 1040411, 2032202, 2032202])
    assert ds.num_train_pids == 3 and ds.num_train_cams == 2
    assert ds.pid_map == {("AGReID", pid): i for i, pid in enumerate(TRAIN_IDS)}
    by_name = {os.path.basename(r.path): r for r in ds.train}
    assert len(by_name) == 5
    first, aerial_alt1, ground = (by_name["P0001T04041A0C0F0031.jpg"], by_name["P0001T04041A1C0F0040.jpg"],
                                  by_name["P0002T03220A2C3F0007.jpg"])
    assert (first.pid, first.camid, first.view) == (0, 0, "aerial")
    assert (aerial_alt1.pid, aerial_alt1.extras["altitude"]) == (1, 1)
    assert (ground.pid, ground.camid, ground.view, ground.modality) == (2, 3, "ground", "visible")
    assert first.extras["time_of_day"] == "pm" and ground.extras["time_of_day"] == "am"
    attrs = first.extras["attributes"]
    assert attrs.shape == (88,) and attrs.dtype == np.float32
    np.testing.assert_array_equal(attrs, np.array(attribute_row(1040410)) * 2 - 3)
    assert set(np.unique(attrs)) == {-1.0, 1.0}
    assert ds.attribute_names == tuple(COLUMNS)


def test_v1_protocols(v1_root: Path) -> None:
    ds = build_dataset("AGReID", str(v1_root))
    assert sorted(ds.protocols) == ["A2G", "ALL_svpr", "G2A"]
    a2g, g2a = ds.protocol("A2G"), ds.protocol("G2A")
    whole = ds.protocol("ALL_svpr")  # SVPR-ReID's mixed test: both query folders against both galleries
    assert names(whole.query) == V1_FILES["query_all_c0"] + V1_FILES["query_all_c3"]
    assert names(whole.gallery) == V1_FILES["bounding_box_test_all_c3"] + V1_FILES["bounding_box_test_all_c0"]
    assert whole.rule == "market"
    assert names(a2g.query) == V1_FILES["query_all_c0"] and names(a2g.gallery) == V1_FILES["bounding_box_test_all_c3"]
    assert names(g2a.query) == V1_FILES["query_all_c3"] and names(g2a.gallery) == V1_FILES["bounding_box_test_all_c0"]
    assert a2g.rule == g2a.rule == "market"
    assert [r.pid for r in a2g.query] == [100051210, 101051201]
    assert {r.view for r in a2g.query} == {"aerial"} and {r.view for r in a2g.gallery} == {"ground"}
    assert {r.camid for r in g2a.query} == {3} and {r.camid for r in g2a.gallery} == {0}
    np.testing.assert_array_equal(g2a.gallery[2].extras["attributes"], np.array(attribute_row(103051210)) * 2 - 3)


def test_v1_without_attributes_and_errors(v1_root: Path) -> None:
    data = v1_root / "AG-ReID"
    mat = data / "qut_attribute_v4_88_attributes.mat"
    write_attribute_mat(mat, TRAIN_IDS[:2], TEST_IDS)
    with pytest.raises(DatasetError, match="2032202"):
        build_dataset("AGReID", str(v1_root))
    mat.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(mat))):
        build_dataset("AGReID", str(v1_root))
    ds = build_dataset("AGReID", str(v1_root), with_attributes=False)
    assert "attributes" not in ds.train[0].extras and ds.attribute_names == ()
    mat.write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match="cannot read attribute file"):
        build_dataset("AGReID", str(v1_root))

    with pytest.raises(DatasetError, match=re.escape(str(v1_root / "nowhere"))) as info:
        build_dataset("AGReID", str(v1_root / "nowhere"))
    assert "query_all_c0/" in str(info.value)
    write_image(data / "query_all_c3" / "person_7.jpg")
    with pytest.raises(DatasetError, match="person_7.jpg"):
        build_dataset("AGReID", str(v1_root), with_attributes=False)
    shutil.rmtree(data / "query_all_c3")
    with pytest.raises(DatasetError, match=re.escape(str(data / "query_all_c3"))):
        build_dataset("AGReID", str(v1_root), with_attributes=False)
    (data / "query_all_c3").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        build_dataset("AGReID", str(v1_root), with_attributes=False)
    write_image(data / "query_all_c3" / "P0100T05121A0C2F0201.jpg")
    with pytest.raises(DatasetError, match="camera C2"):
        build_dataset("AGReID", str(v1_root), with_attributes=False)


V2_TRAIN = ["P0001T04041A0C0F0001.jpg", "P0001T04041A0C2F0002.jpg", "P0001T04041A0C3F0003.jpg",
            "P0005T04041A1C3F0004.jpg"]
V2_QUERY = ["P0300T02220A0C0F0001.jpg", "P0300T02220A0C2F0002.jpg", "P0300T02220A0C3F0003.jpg",
            "P0301T02220A1C0F0004.jpg", "P0302T02221A0C0F0005.jpg"]
V2_GALLERY = ["P0300T02220A0C0F0011.jpg", "P0300T02220A0C2F0012.jpg", "P0300T02220A0C3F0013.jpg",
              "P0301T02220A1C3F0014.jpg", "P0303T02221A0C2F0015.jpg"]
V2_LISTS = {  # protocol file -> (query names, gallery names)
    "exp1_aerial_to_cctv.txt": (["P0300T02220A0C0F0001.jpg", "P0301T02220A1C0F0004.jpg"],
                                ["P0300T02220A0C3F0013.jpg", "P0301T02220A1C3F0014.jpg"]),
    "exp2_aerial_to_wearable.txt": (["P0300T02220A0C0F0001.jpg"],
                                    ["P0300T02220A0C2F0012.jpg", "P0303T02221A0C2F0015.jpg"]),
    "exp4_cctv_to_aerial.txt": (["P0300T02220A0C3F0003.jpg"], ["P0300T02220A0C0F0011.jpg"]),
    "exp5_wearable_to_aerial.txt": (["P0300T02220A0C2F0002.jpg"], ["P0300T02220A0C0F0011.jpg"]),
}


def v2_rel(split: str, name: str) -> str:
    return f"{split}/{name[:13]}/{name}"


@pytest.fixture
def v2_root(tmp_path: Path) -> Path:
    outer = tmp_path / "AG-ReID.v2"
    inner = outer / "AG-ReID.v2"
    for split, files in (("train_all", V2_TRAIN), ("query", V2_QUERY), ("gallery", V2_GALLERY)):
        for name in files:
            write_image(inner / v2_rel(split, name))
    for list_name, (query, gallery) in V2_LISTS.items():
        lines = [v2_rel("query", n) for n in query] + [v2_rel("gallery", n) for n in gallery]
        (outer / list_name).write_text("\n".join(lines) + "\n")
    ids = sorted({composite(n) for n in V2_TRAIN + V2_QUERY + V2_GALLERY})
    write_attribute_mat(outer / "qut_attribute_v8.mat", ids[:2], ids[2:])
    return tmp_path


def test_v2_from_protocol_files(v2_root: Path) -> None:
    ds = build_dataset("AGReIDv2", str(v2_root))
    assert ds.root == str(v2_root / "AG-ReID.v2")
    assert ds.num_train_pids == 2 and ds.num_train_cams == 3
    assert {os.path.basename(r.path): (r.pid, r.camid, r.view) for r in ds.train} == {
        "P0001T04041A0C0F0001.jpg": (0, 0, "aerial"), "P0001T04041A0C2F0002.jpg": (0, 2, "wearable"),
        "P0001T04041A0C3F0003.jpg": (0, 3, "cctv"), "P0005T04041A1C3F0004.jpg": (1, 3, "cctv")}
    assert all(r.extras["attributes"].shape == (88,) for r in ds.train)
    assert sorted(ds.protocols) == ["A2C", "A2C_svpr", "A2W", "A2W_svpr", "ALL_svpr", "C2A", "C2A_svpr", "W2A",
                                    "W2A_svpr"]
    whole = ds.protocol("ALL_svpr")  # SVPR-ReID's mixed test: every query image against the whole gallery
    assert {r.view for r in whole.query} == {"aerial", "cctv", "wearable"} and whole.rule == "market"
    assert sorted(names(whole.query)) == sorted(V2_QUERY) and sorted(names(whole.gallery)) == sorted(V2_GALLERY)
    files = {"A2C": "exp1_aerial_to_cctv.txt", "A2W": "exp2_aerial_to_wearable.txt",
             "C2A": "exp4_cctv_to_aerial.txt", "W2A": "exp5_wearable_to_aerial.txt"}
    views = {"A2C": ("aerial", "cctv"), "A2W": ("aerial", "wearable"), "C2A": ("cctv", "aerial"),
             "W2A": ("wearable", "aerial")}
    for proto, list_name in files.items():
        p = ds.protocol(proto)
        assert (names(p.query), names(p.gallery)) == V2_LISTS[list_name]
        assert p.rule == "market"
        assert {r.view for r in p.query} == {views[proto][0]} and {r.view for r in p.gallery} == {views[proto][1]}
        assert all(os.path.isfile(r.path) and "attributes" in r.extras for r in p.query + p.gallery)
    assert ds.protocol("A2C").query[1].pid == 301022201


def test_v2_from_cameras_and_flat_variant(v2_root: Path) -> None:
    outer = v2_root / "AG-ReID.v2"
    for list_name in V2_LISTS:
        (outer / list_name).unlink()
    ds = build_dataset("AGReIDv2", str(v2_root), protocol_source="cameras", with_attributes=False)
    a2c, a2w = ds.protocol("A2C"), ds.protocol("A2W")
    assert names(a2c.gallery) == ["P0300T02220A0C3F0013.jpg", "P0301T02220A1C3F0014.jpg"]
    assert names(a2c.query) == ["P0300T02220A0C0F0001.jpg", "P0301T02220A1C0F0004.jpg"]
    assert names(a2w.query) == ["P0300T02220A0C0F0001.jpg"]
    assert names(ds.protocol("W2A").query) == ["P0300T02220A0C2F0002.jpg"]
    assert names(ds.protocol("C2A").gallery) == ["P0300T02220A0C0F0011.jpg"]
    for item in (outer / "AG-ReID.v2").iterdir():
        shutil.move(str(item), str(outer / item.name))
    (outer / "AG-ReID.v2").rmdir()
    flat = build_dataset("AGReIDv2", str(v2_root), protocol_source="cameras", with_attributes=False)
    assert names(flat.protocol("A2C").query) == names(a2c.query)
    with pytest.raises(ValueError, match="protocol_source"):
        build_dataset("AGReIDv2", str(v2_root), protocol_source="txt")


def test_v2_errors(v2_root: Path) -> None:
    outer = v2_root / "AG-ReID.v2"
    exp2 = outer / "exp2_aerial_to_wearable.txt"
    exp2.write_text("query/P0300T02220A0/P0300T02220A0C0F0001.jpg\ntrain_all/P0001T04041A0/x.jpg\n")
    with pytest.raises(DatasetError, match=re.escape(f"{exp2}, line 2")):
        build_dataset("AGReIDv2", str(v2_root))
    exp2.write_text("query/P0300T02220A0/P0300T02220A0C0F0001.jpg\ngallery/P0300T02220A0/P0300T02220A0C2F0999.jpg\n")
    with pytest.raises(DatasetError, match="P0300T02220A0C2F0999.jpg"):
        build_dataset("AGReIDv2", str(v2_root))
    exp2.write_text("gallery/P0300T02220A0/P0300T02220A0C2F0012.jpg\n")
    with pytest.raises(DatasetError, match="lists no query images"):
        build_dataset("AGReIDv2", str(v2_root))
    exp2.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(exp2))) as info:
        build_dataset("AGReIDv2", str(v2_root))
    assert "exp5_wearable_to_aerial.txt" in str(info.value)
    shutil.rmtree(outer / "AG-ReID.v2" / "train_all")
    with pytest.raises(DatasetError, match="train_all"):
        build_dataset("AGReIDv2", str(v2_root))


def test_v2_svpr_protocols_next_to_the_lists(v2_root: Path) -> None:
    """``*_svpr`` select queries by camera, keeping pids the gallery camera holds (SVPR-ReID's AGReIDv2_*)."""
    ds = build_dataset("AGReIDv2", str(v2_root), with_attributes=False)
    a2c = ds.protocol("A2C_svpr")
    assert names(a2c.query) == ["P0300T02220A0C0F0001.jpg", "P0301T02220A1C0F0004.jpg"]  # P0302: not in C3 gallery
    assert names(a2c.gallery) == ["P0300T02220A0C3F0013.jpg", "P0301T02220A1C3F0014.jpg"]
    assert names(ds.protocol("C2A_svpr").query) == ["P0300T02220A0C3F0003.jpg"]
    assert names(ds.protocol("C2A_svpr").gallery) == ["P0300T02220A0C0F0011.jpg"]
    assert names(ds.protocol("W2A_svpr").query) == ["P0300T02220A0C2F0002.jpg"]
    assert names(ds.protocol("A2W_svpr").query) == ["P0300T02220A0C0F0001.jpg"]
    assert names(ds.protocol("A2W_svpr").gallery) == ["P0300T02220A0C2F0012.jpg", "P0303T02221A0C2F0015.jpg"]
    assert all(p.rule == "market" for p in ds.protocols.values())
    cams = build_dataset("AGReIDv2", str(v2_root), protocol_source="cameras", with_attributes=False)
    for name in ("A2C", "C2A", "A2W", "W2A"):
        assert cams.protocol(name) == cams.protocol(f"{name}_svpr") == ds.protocol(f"{name}_svpr")


# Hand-made identity 1040410: attribute_row puts the group's '2' at 1040410 % n
V1_CAPTION = ("A photo of a X X X X  person with the following attributes: gender is female, age is old, height is "
              "child, weight is fat, ethnic is white, haircolor is black, hairstyle is horsetail, beard is off, "
              "moustache is off, glasses is off, head is hat, upper is uniform, lower is jeans, feet is sportshoe, "
              "bag is backpack.")
V1_LABELS = [1, 2, 0, 2, 0, 0, 4, 1, 1, 2, 0, 7, 0, 0, 1]


def test_v1_svpr_captions(v1_root: Path) -> None:
    from agreid.data.common import ReIDImageSet, collate_batch
    from agreid.data.datasets.agreid_v1 import group_labels

    ds = build_dataset("AGReID", str(v1_root), captions="svpr")
    assert ds.attribute_classes == ATTRIBUTE_GROUPS
    first = [r for r in ds.train if r.pid == 0]
    assert {r.extras["caption"] for r in first} == {V1_CAPTION}
    assert first[0].extras["batch_fields"]["attribute_labels"].tolist() == V1_LABELS
    batch = collate_batch([ReIDImageSet(ds.train)[i] for i in range(len(ds.train))])
    assert batch["captions"].shape == (5, 100) and batch["attribute_labels"].shape == (5, 15)
    assert batch["svpr_views"].tolist() == [int(r.view == "aerial") for r in ds.train]
    a2g = ds.protocol("A2G")
    test = list(a2g.query + a2g.gallery)
    assert {r.extras["caption"] for r in test} == {"A photo of a X X X X  person. Attributes are unknown."}
    assert {tuple(r.extras["batch_fields"]["attribute_labels"]) for r in test} == {(-1,) * 15}
    assert [r.extras["batch_fields"]["svpr_views"] for r in a2g.query + a2g.gallery] == [1, 1, 0, 0]
    row = np.array(attribute_row(1040410)) * 2 - 3
    row[:3] = -1  # no positive gender value: the last class, "unknown"
    assert group_labels(row)[:2] == (2, 2)
    with pytest.raises(ValueError, match="with_attributes"):
        build_dataset("AGReID", str(v1_root), captions="svpr", with_attributes=False)


def test_v2_svpr_captions(v2_root: Path) -> None:
    ds = build_dataset("AGReIDv2", str(v2_root), captions="svpr")
    assert ds.attribute_classes == ATTRIBUTE_GROUPS
    views = {r.view: r.extras["batch_fields"]["svpr_views"] for r in ds.train}
    assert views == {"cctv": 0, "wearable": 1, "aerial": 2}
    assert all(r.extras["caption"].startswith("A photo of a X X X X  person with the following attributes: gender is ")
               for r in ds.train)
    for name in ("A2C", "A2C_svpr", "W2A"):
        p = ds.protocol(name)
        assert {r.extras["caption"] for r in p.query + p.gallery} == {
            "A photo of a X X X X  person. Attributes are unknown."}
    assert "batch_fields" not in build_dataset("AGReIDv2", str(v2_root)).train[0].extras
