"""CP2108 adapter on a miniature copy of its layout: lists, views, day-night flag, attributes, protocols."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

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


# --- SVPR-ReID captions, attribute labels and class counts (option captions='svpr') ---------------------------
SVPR_VALUES = {"Accessories": "backpack", "Feet": "sneakers", "Glasses": "no", "Head Accessories": "hat",
               "Holding Phone": "no", "Lower Clothing": "trousers", "Lower Color": "black", "Lower Style": "long",
               "Pose": "front", "Upper Clothing": "t-shirt", "Upper Color": "white", "Upper Style": "short-sleeved"}
TRAIN_CAPTION = ("A photo of a X X X X  person with the following attributes: Accessories is backpack, Feet is "
                 "sneakers, Glasses is no, Head_Accessories is hat, Holding_Phone is no, Lower_Clothing is trousers, "
                 "Lower_Color is black, Lower_Style is long, Pose is front, Upper_Clothing is t-shirt, Upper_Color "
                 "is white, Upper_Style is short-sleeved.")
TEST_CAPTION = "A photo of a X X X X  person."
# Token ids of TRAIN_CAPTION / TEST_CAPTION from SVPR-ReID's own tokenizer (utils/simple_tokenizer.tokenize, length 100)
REF_TRAIN_TOKENS = [
    49406, 320, 1125, 539, 320, 343, 343, 343, 343, 2533, 593, 518, 3473, 40763, 281, 10220, 533, 14894, 267, 4804,
    533, 17397, 267, 6116, 533, 871, 267, 1375, 318, 10220, 533, 3801, 267, 5050, 318, 1951, 533, 871, 267, 4909,
    318, 7425, 533, 23172, 267, 4909, 318, 3140, 533, 1449, 267, 4909, 318, 1844, 533, 1538, 267, 4230, 533, 2184,
    267, 7067, 318, 7425, 533, 339, 268, 2523, 267, 7067, 318, 3140, 533, 1579, 267, 7067, 318, 1844, 533, 3005,
    268, 1709, 19820, 269, 49407]
REF_TEST_TOKENS = [49406, 320, 1125, 539, 320, 343, 343, 343, 343, 2533, 269, 49407]


def svpr_index() -> dict:
    """12 used attributes with 3..14 classes in sorted-name order (the parity target's stand-in for the unreleased index file), plus unused ones.

    Written in reverse name order: the adapter must sort. Attribute i's SVPR_VALUES word is its last class.
    """
    index = {"Gender": {"male": 0, "female": 1}, "View": {"front": 0, "back": 1}}
    for i, attr in reversed(list(enumerate(sorted(SVPR_VALUES)))):
        index[attr] = {**{f"{attr} {k}": k for k in range(2 + i)}, SVPR_VALUES[attr]: 2 + i}
    return index


def other_values(k: int) -> dict:
    return {attr: f"{attr} {k}" for attr in SVPR_VALUES}


def make_svpr_cp2108(root: Path) -> Path:
    d = make_cp2108(root, attributes=False)
    annotations = {"1_0_1": {**SVPR_VALUES, "Gender": "male"}, "1_0_0": other_values(1), "1_1_1": other_values(0),
                   "2_1_0": other_values(1), "10_1_1": other_values(0), "10_0_0": other_values(1)}
    (d / "attributes_labeled_qwen.json").write_text(json.dumps(annotations))
    (d / "attr_translation_idx.json").write_text(json.dumps(svpr_index()))
    return d


def test_attribute_class_counts_come_from_the_index_file(tmp_path: Path) -> None:
    d = make_svpr_cp2108(tmp_path)
    ds = build_dataset("CP2108", str(tmp_path), captions="svpr")
    assert ds.attribute_classes == tuple(zip(sorted(SVPR_VALUES), range(3, 15)))
    assert build_dataset("CP2108", str(tmp_path)).attribute_classes == ds.attribute_classes
    index = svpr_index()
    del index["Pose"]
    index["Feet"] = {"Feet 1": 0, "sneakers": 1, "Feet 0": 2}
    (d / "attr_translation_idx.json").write_text(json.dumps(index))
    ds = build_dataset("CP2108", str(tmp_path), captions="svpr")
    classes = dict(ds.attribute_classes)
    assert "Pose" not in classes and classes["Feet"] == 3 and len(classes) == 11
    assert "Pose is" not in ds.train[0].extras["caption"]


def test_svpr_captions_and_labels(tmp_path: Path) -> None:
    make_svpr_cp2108(tmp_path)
    ds = build_dataset("CP2108", str(tmp_path), captions="svpr")
    first = [r for r in ds.train if r.pid == 0]  # raw pid 1: the (ground view, time 1) entry, for both views
    assert {r.view for r in first} == {"ground", "aerial"}
    for r in first:
        assert r.extras["caption"] == TRAIN_CAPTION
        assert r.extras["batch_fields"]["attribute_labels"].tolist() == list(range(2, 14))
        assert r.extras["batch_fields"]["svpr_views"] == (1 if r.view == "aerial" else 0)
    second = [r for r in ds.train if r.pid == 1]  # raw pid 2: only an aerial, time-0 entry
    assert {r.extras["caption"] for r in second} == {
        "A photo of a X X X X  person with the following attributes: "
        + ", ".join(f"{a.replace(' ', '_')} is {a} 1" for a in sorted(SVPR_VALUES)) + "."}
    assert second[0].extras["batch_fields"]["attribute_labels"].tolist() == [1] * 12
    query = {r.pid: r for r in ds.protocol("ALL").query}
    assert {r.extras["caption"] for r in query.values()} == {TEST_CAPTION}
    assert query[10].extras["batch_fields"]["attribute_labels"].tolist() == [1] * 12  # ground view beats time 1
    assert query[11].extras["batch_fields"]["attribute_labels"].tolist() == [-1] * 12  # not annotated
    agag = ds.protocol("AGAG")
    assert {r.extras["caption"] for r in agag.query + agag.gallery} == {TEST_CAPTION}


def test_tokenised_captions_in_a_batch(tmp_path: Path) -> None:
    from agreid.data.common import ReIDImageSet, collate_batch

    make_svpr_cp2108(tmp_path)
    ds = build_dataset("CP2108", str(tmp_path), captions="svpr")
    batch = collate_batch([ReIDImageSet(ds.train)[i] for i in range(len(ds.train))])
    assert batch["captions"].shape == (4, 100) and batch["captions"].dtype == torch.int64
    assert batch["attribute_labels"].shape == (4, 12) and batch["attribute_labels"].dtype == torch.int64
    assert batch["svpr_views"].tolist() == [int(r.view == "aerial") for r in ds.train]
    for row, record in zip(batch["captions"], ds.train):
        if record.pid == 0:
            assert row[:len(REF_TRAIN_TOKENS)].tolist() == REF_TRAIN_TOKENS and not row[len(REF_TRAIN_TOKENS):].any()
    query = ds.protocol("AG").query
    batch = collate_batch([ReIDImageSet(query)[i] for i in range(len(query))])
    assert batch["captions"].tolist() == [REF_TEST_TOKENS + [0] * 88] * len(query)
    plain = build_dataset("CP2108", str(tmp_path))
    item = ReIDImageSet(plain.train)[0]
    assert not {"captions", "attribute_labels", "svpr_views"} & set(item)
    short = build_dataset("CP2108", str(tmp_path), captions="svpr", caption_length=20, caption_prompts=2)
    tokens = short.train[0].extras["batch_fields"]["captions"]
    assert tokens.shape == (20,) and tokens[-1] == 49407 and (tokens == 343).sum() == 2
    with pytest.raises(ValueError, match="captions"):
        build_dataset("CP2108", str(tmp_path), captions="clip")
    with pytest.raises(ValueError, match="caption_length"):
        build_dataset("CP2108", str(tmp_path), captions="svpr", caption_length=0)


@pytest.mark.parametrize("file, content, message", [
    ("attributes_labeled_qwen.json", None, "attributes_labeled_qwen.json', which was not found"),
    ("attr_translation_idx.json", None, "attr_translation_idx.json', which was not found"),
    ("attributes_labeled_qwen.json", "{", "is not valid JSON"),
    ("attributes_labeled_qwen.json", "[1, 2]", "must be a JSON object mapping '<pid>_<viewid>_<timeid>'"),
    ("attr_translation_idx.json", '{"Pose": ["front", "back"]}', "must be a JSON object mapping each attribute"),
    ("attr_translation_idx.json", '{"Gender": {"male": 0}}', "lists none of the attributes"),
    ("attr_translation_idx.json", '{"Pose": {"front": 0, "back": 5}}', "class indices of 'Pose' must be"),
    ("attributes_labeled_qwen.json", json.dumps({"1_0_1": SVPR_VALUES}), r"1 training identities .* no entry.*: 2\."),
])
def test_attribute_file_errors(tmp_path: Path, file: str, content, message: str) -> None:
    d = make_svpr_cp2108(tmp_path)
    if content is None:
        (d / file).unlink()
    else:
        (d / file).write_text(content)
    with pytest.raises(DatasetError, match=message) as info:
        build_dataset("CP2108", str(tmp_path), captions="svpr")
    assert (file if "no entry" in message else str(d / file)) in str(info.value)
    assert "Expected layout" in str(info.value) and '{"<attribute>": {"<value>"' in str(info.value)
