"""CustomCSV and CustomFolder: records, relabelling, protocols, rules and every validation error."""
import os
import re
from pathlib import Path

import pytest

from agreid.data import DatasetError, build_dataset
from agreid.data.datasets.custom import read_records_csv

HEADER = "path,pid,camid,view,modality\n"


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8jpeg")


def write_csv(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    for line in text.splitlines()[1:]:
        if line.strip() and not line.startswith("#"):
            touch(path.parent / line.split(",")[0])


@pytest.fixture
def csv_root(tmp_path: Path) -> Path:
    d = tmp_path / "mine"
    write_csv(d / "train.csv", HEADER + "img/t/10_a.jpg,10,1,ground,visible\n"
                                        "img/t/3_a.jpg,3,5,aerial,\n"
                                        "img/t/7_a.jpg,7,2,,infrared\n"
                                        "img/t/10_b.jpg,10,6,aerial,visible\n")
    write_csv(d / "A2G_query.csv", HEADER + "img/q/50.jpg,50,5,aerial,visible\n")
    write_csv(d / "A2G_gallery.csv", HEADER + "img/g/50.jpg,50,1,ground,visible\n"
                                              "img/g/51.jpg,51,2,ground,visible\n")
    write_csv(d / "G2A_query.csv", "path,pid,camid\nimg/g/50.jpg,50,1\n")
    write_csv(d / "G2A_gallery.csv", "path,pid,camid,view\nimg/q/50.jpg,50,5,aerial\n")
    (d / "rules.csv").write_text("protocol,rule\n# the aerial query may match its own camera\nG2A,none\n")
    return tmp_path


def test_csv_records_relabelling_and_protocols(csv_root: Path) -> None:
    ds = build_dataset("CustomCSV", str(csv_root), dataset_dir="mine")
    data_dir = os.path.join(str(csv_root), "mine")
    assert ds.root == data_dir and ds.num_train_pids == 3
    assert ds.pid_map == {("CustomCSV", 3): 0, ("CustomCSV", 7): 1, ("CustomCSV", 10): 2}
    by_path = {os.path.relpath(r.path, data_dir): r for r in ds.train}
    assert by_path[os.path.join("img", "t", "3_a.jpg")].pid == 0
    assert by_path[os.path.join("img", "t", "10_b.jpg")].pid == 2
    assert [(r.camid, r.view, r.modality) for r in sorted(ds.train, key=lambda r: r.path)] == [
        (1, "ground", "visible"), (6, "aerial", "visible"), (5, "aerial", "visible"),
        (2, "ground", "infrared")]
    assert sorted(ds.protocols) == ["A2G", "G2A"]
    a2g, g2a = ds.protocol("A2G"), ds.protocol("G2A")
    assert a2g.rule == "market" and g2a.rule == "none"
    assert [r.pid for r in a2g.query] == [50] and [r.pid for r in a2g.gallery] == [50, 51]
    assert g2a.query[0].view == "ground" and g2a.gallery[0].view == "aerial"
    assert all(os.path.isabs(r.path) and os.path.isfile(r.path) for r in a2g.gallery)


def test_csv_extra_columns_go_to_extras(tmp_path: Path) -> None:
    write_csv(tmp_path / "x.csv", "path,pid,camid,colour\na.jpg,1,1,red\n")
    (record,) = read_records_csv(str(tmp_path / "x.csv"))
    assert record.extras == {"colour": "red"} and record.view == "ground"


def _expect_error(root: Path, fragment: str, **options) -> str:
    with pytest.raises(DatasetError) as info:
        build_dataset("CustomCSV", str(root), dataset_dir="mine", **options)
    assert fragment in str(info.value), str(info.value)
    return str(info.value)


def test_csv_missing_directory_shows_layout(tmp_path: Path) -> None:
    message = _expect_error(tmp_path, str(tmp_path / "mine"))
    assert "train.csv" in message and "<PROTOCOL>_query.csv" in message


def test_csv_missing_train_file(csv_root: Path) -> None:
    (csv_root / "mine" / "train.csv").unlink()
    _expect_error(csv_root, str(csv_root / "mine" / "train.csv"))


def test_csv_unpaired_protocol_file(csv_root: Path) -> None:
    (csv_root / "mine" / "G2A_gallery.csv").unlink()
    _expect_error(csv_root, str(csv_root / "mine" / "G2A_gallery.csv"))


def test_csv_without_protocols(csv_root: Path) -> None:
    for name in ("A2G_query.csv", "A2G_gallery.csv", "G2A_query.csv", "G2A_gallery.csv", "rules.csv"):
        (csv_root / "mine" / name).unlink()
    _expect_error(csv_root, str(csv_root / "mine"))


@pytest.mark.parametrize("row, fragment", [
    ("img/t/3_a.jpg,three,1,ground,visible", "'pid'"),
    ("img/t/3_a.jpg,3,1,satellite,visible", "'view'"),
    ("img/t/3_a.jpg,3,1,ground,thermal", "'modality'"),
    ("img/t/3_a.jpg,3,1", "expected 5 fields"),
    (",3,1,ground,visible", "'path' is empty"),
    ("img/t/3_a.jpg,-1,1,ground,visible", "negative pid"),
])
def test_csv_bad_row_names_file_and_line(csv_root: Path, row: str, fragment: str) -> None:
    path = csv_root / "mine" / "train.csv"
    path.write_text(HEADER + "img/t/10_a.jpg,10,1,ground,visible\n\n" + row + "\n")
    message = _expect_error(csv_root, str(path))
    assert fragment in message
    if fragment != "negative pid":
        assert "line 4" in message


def test_csv_bad_header(csv_root: Path) -> None:
    path = csv_root / "mine" / "A2G_query.csv"
    path.write_text("file,pid,camid\nimg/q/50.jpg,50,5\n")
    assert "line 1" in _expect_error(csv_root, str(path))
    path.write_text("")
    _expect_error(csv_root, str(path))


def test_csv_missing_image_is_named(csv_root: Path) -> None:
    missing = csv_root / "mine" / "img" / "g" / "51.jpg"
    missing.unlink()
    message = _expect_error(csv_root, str(missing))
    assert "A2G_gallery.csv" in message


def test_csv_empty_train(csv_root: Path) -> None:
    (csv_root / "mine" / "train.csv").write_text(HEADER)
    _expect_error(csv_root, str(csv_root / "mine" / "train.csv"))


def test_csv_empty_query(csv_root: Path) -> None:
    (csv_root / "mine" / "A2G_query.csv").write_text(HEADER)
    _expect_error(csv_root, str(csv_root / "mine" / "A2G_query.csv"))


@pytest.mark.parametrize("text", ["X2Y,market\n", "A2G\n", "A2G,market,extra\n", "A2G,bad rule\n"])
def test_csv_bad_rules_file(csv_root: Path, text: str) -> None:
    path = csv_root / "mine" / "rules.csv"
    path.write_text("# comment\n" + text)
    assert "line 2" in _expect_error(csv_root, str(path))


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    d = tmp_path / "custom_folder"
    for name in ("train/0002_c1_a.jpg", "train/0002_c5_b.png", "train/sub/0009_c2s1_000151_01.jpg",
                 "train/-1_c1_junk.jpg", "query/0100_c5_q.jpg", "query/-1_c5_junk.jpg",
                 "gallery/0100_c1_g.jpg", "gallery/0101_c3_g.JPG", "gallery/-1_c2_junk.jpg"):
        touch(d / name)
    (d / "train" / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_records_views_and_junk(folder_root: Path) -> None:
    ds = build_dataset("CustomFolder", str(folder_root), aerial_cams=(5, 6))
    assert ds.num_train_pids == 2 and len(ds.train) == 3
    assert sorted((r.pid, r.camid, r.view) for r in ds.train) == [
        (0, 1, "ground"), (0, 5, "aerial"), (1, 2, "ground")]
    proto = ds.protocol("default")
    assert proto.rule == "market" and list(ds.protocols) == ["default"]
    assert [(r.pid, r.view) for r in proto.query] == [(100, "aerial")]
    assert sorted(r.pid for r in proto.gallery) == [-1, 100, 101]


def test_folder_aerial_cams_from_string(folder_root: Path) -> None:
    ds = build_dataset("CustomFolder", str(folder_root), aerial_cams="1, 3")
    views = {r.camid: r.view for r in ds.protocol("default").gallery}
    assert views == {1: "aerial", 2: "ground", 3: "aerial"}
    assert {r.view for r in build_dataset("CustomFolder", str(folder_root)).train} == {"ground"}


def test_folder_errors_name_the_path(folder_root: Path) -> None:
    d = folder_root / "custom_folder"
    bad = d / "query" / "person7.jpg"
    touch(bad)
    with pytest.raises(DatasetError, match="person7.jpg"):
        build_dataset("CustomFolder", str(folder_root))
    bad.unlink()
    for name in os.listdir(d / "query"):
        (d / "query" / name).unlink()
    with pytest.raises(DatasetError, match=re.escape(str(d / "query"))):
        build_dataset("CustomFolder", str(folder_root))
    (d / "query").rmdir()
    with pytest.raises(DatasetError, match=re.escape(str(d / "query"))):
        build_dataset("CustomFolder", str(folder_root))
    with pytest.raises(DatasetError, match=re.escape(str(folder_root / "elsewhere"))):
        build_dataset("CustomFolder", str(folder_root), dataset_dir="elsewhere")


def test_folder_train_with_only_junk_is_empty(folder_root: Path) -> None:
    train = folder_root / "custom_folder" / "train"
    for path in sorted(train.rglob("*"), reverse=True):
        if path.is_file() and not path.name.startswith("-1"):
            path.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(train))):
        build_dataset("CustomFolder", str(folder_root))
