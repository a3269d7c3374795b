"""tools/dataset_stats.py: counts per split, the comparison with published counts, and clean failures."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Tuple

import pytest

from agreid.data import DatasetError, ImageRecord, Protocol, ReIDDataset, build_dataset
from agreid.data.datasets import published_counts
from agreid.registries import DATASET_REGISTRY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_OPTIONS = {"num_train_ids": 4, "num_test_ids": 3, "images_per_view": 2}
DEMO_ARGS = [f"--option={k}={v}" for k, v in DEMO_OPTIONS.items()]


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dataset_stats", os.path.join(REPO, "tools", "dataset_stats.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agdemo")


@pytest.fixture(scope="module")
def demo_counts(demo_root: Path) -> Dict[str, Tuple[int, int, int]]:
    ds = build_dataset("AGDemo", str(demo_root), **DEMO_OPTIONS)
    subsets = [("train", ds.train)]
    for name, proto in ds.protocols.items():
        subsets += [(f"{name}/query", proto.query), (f"{name}/gallery", proto.gallery)]
    return {s: (len({r.pid for r in recs}), len(recs), len({r.camid for r in recs})) for s, recs in subsets}


def run(tool: ModuleType, capsys: pytest.CaptureFixture, argv: List[str]) -> Tuple[int, str, str]:
    code = tool.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(out: str) -> Dict[str, List[str]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("subset"))
    rows = {}
    for line in lines[start + 1:]:
        tokens = line.split()
        if len(tokens) < 7 or not tokens[1].isdigit():
            break
        rows[tokens[0]] = tokens[1:]
    return rows


def test_counts_match_the_demo_dataset(tool, capsys, demo_root, demo_counts) -> None:
    code, out, _ = run(tool, capsys, ["--dataset", "AGDemo", "--root", str(demo_root)] + DEMO_ARGS)
    assert code == 0
    rows = table_rows(out)
    assert set(rows) == set(demo_counts)
    for subset, counts in demo_counts.items():
        assert tuple(int(v) for v in rows[subset][:3]) == counts
        assert rows[subset][3:] == ["-", "-", "-"]
    assert out.rstrip().endswith("no published counts for AGDemo")


def test_a_differing_published_count_is_flagged(tool, capsys, monkeypatch, demo_root, demo_counts) -> None:
    fake = {s: dict(zip(("ids", "images", "cameras"), c)) for s, c in demo_counts.items()}
    fake["A2G/gallery"]["images"] += 1
    fake["source"] = "test entry"
    monkeypatch.setitem(published_counts.PUBLISHED, "AGDemo", fake)
    code, out, _ = run(tool, capsys, ["--dataset", "AGDemo", "--root", str(demo_root)] + DEMO_ARGS)
    assert code == 0
    flagged = {s: cells[6:] for s, cells in table_rows(out).items() if "!=" in cells}
    assert flagged == {"A2G/gallery": ["!=", "images"]}
    assert "note: published counts: test entry" in out
    assert out.rstrip().endswith(f"1 difference from the published counts ({3 * len(demo_counts)} published "
                                 f"numbers compared)")


def test_matching_published_counts(tool, capsys, monkeypatch, demo_root, demo_counts) -> None:
    fake = {s: {"ids": c[0], "images": c[1], "cameras": None} for s, c in demo_counts.items()}
    monkeypatch.setitem(published_counts.PUBLISHED, "AGDemo", fake)
    code, out, _ = run(tool, capsys, ["--dataset", "AGDemo", "--root", str(demo_root)] + DEMO_ARGS)
    assert code == 0 and "!=" not in out
    assert out.rstrip().endswith(f"matches the published counts ({2 * len(demo_counts)} published numbers compared)")


def test_missing_root_exits_2_with_the_dataset_error(tool, capsys, tmp_path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(DatasetError) as raised:
        build_dataset("RegDB", missing)
    code, out, err = run(tool, capsys, ["--dataset", "RegDB", "--root", missing])
    assert code == 2
    assert str(raised.value) in err
    assert "Traceback" not in out + err


def test_bad_names_and_options_exit_2(tool, capsys, tmp_path) -> None:
    code, _, err = run(tool, capsys, ["--dataset", "NoSuchSet", "--root", str(tmp_path)])
    assert code == 2 and "Registered:" in err and "AGDemo" in err
    code, _, err = run(tool, capsys, ["--dataset", "RegDB", "--root", str(tmp_path), "--option", "trail=2"])
    assert code == 2 and "trail" in err
    code, _, err = run(tool, capsys, ["--dataset", "RegDB", "--root", str(tmp_path), "--option", "trial"])
    assert code == 2 and "key=value" in err


def test_list_prints_the_registered_names(tool, capsys) -> None:
    code, out, _ = run(tool, capsys, ["--list"])
    assert code == 0
    assert out.split() == list(DATASET_REGISTRY)
    assert {"AGDemo", "LAGPeR", "SYSU_MM01", "LLCM"} <= set(out.split())


def test_trial_zero_draws_are_counted_beside_the_pool(tool) -> None:
    gallery = tuple(ImageRecord(path=f"g{i}.jpg", pid=i // 4, camid=i % 2) for i in range(8))
    query = (ImageRecord(path="q0.jpg", pid=0, camid=5), ImageRecord(path="q1.jpg", pid=1, camid=5))
    proto = Protocol(query=query, gallery=gallery, trials=((None, (0, 1, 4)), (None, (2, 3, 5))))
    ds = ReIDDataset("Trials", [ImageRecord(path="t.jpg", pid=7, camid=0)], {"P": proto})
    rows, notes = tool.compare(ds, {"P/gallery": {"ids": 2, "images": 8, "cameras": None}})
    by_name = {r.subset: r for r in rows}
    assert list(by_name) == ["train", "P/query", "P/gallery", "P/gallery(trial0)"]
    assert by_name["P/gallery"].counts == (2, 8, 2)
    assert by_name["P/gallery(trial0)"].counts == (2, 3, 2)
    assert by_name["P/gallery"].differences == []
    assert any("2 trials" in n and "P/gallery(trial0)" in n for n in notes)


EXPECTED_PROTOCOLS = {
    "LAGPeR": ["A2G", "G2A", "G2AG"], "G2APS_ReID": ["A2G", "G2A"],
    "CP2108": ["ALL", "AG", "GA", "AA", "GG", "AGAG", "AAGG"], "CARGO": ["ALL", "A2G", "A2A", "G2G"],
    "AGReID": ["A2G", "G2A"], "AGReIDv2": ["A2C", "C2A", "A2W", "W2A"], "MSSL": ["S2G", "G2S", "DDC"],
    "AGVPReID": ["A2G", "G2A"], "SYSU_MM01": ["all", "indoor"], "RegDB": ["V2T", "T2V"],
    "LLCM": ["IR2VIS", "VIS2IR"],
}


def test_published_table_shape() -> None:
    assert set(published_counts.PUBLISHED) == set(EXPECTED_PROTOCOLS)
    for name, entry in published_counts.PUBLISHED.items():
        assert name in DATASET_REGISTRY
        assert isinstance(entry["source"], str) and entry["source"]
        subsets = {k for k in entry if k != "source"}
        expected = {"train"} | {f"{p}/{s}" for p in EXPECTED_PROTOCOLS[name] for s in ("query", "gallery")}
        assert subsets == expected, name
        for subset in subsets:
            counts = entry[subset]
            assert set(counts) == {"ids", "images", "cameras"}
            assert all(v is None or (isinstance(v, int) and v > 0) for v in counts.values()), (name, subset)
