"""tools/aggregate_results.py: mean and spread of several runs' results.json."""
import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool():
    spec = importlib.util.spec_from_file_location("aggregate_results", os.path.join(REPO, "tools", "aggregate_results.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mean_and_std_over_runs(tmp_path, capsys):
    tool = load_tool()
    for i, (r1, m) in enumerate([(60.0, 50.0), (70.0, 54.0), (80.0, 58.0)]):
        run = tmp_path / f"trial{i + 1}"
        run.mkdir()
        (run / "results.json").write_text(json.dumps({"RegDB/V2T": {"Rank-1": r1, "mAP": m}, f"only{i}": {"mAP": 1}}))
    assert tool.main([str(tmp_path / f"trial{i}") for i in (1, 2, 3)] + ["--output", str(tmp_path / "agg")]) == 0
    agg = json.loads((tmp_path / "agg" / "aggregate.json").read_text())
    assert list(agg) == ["RegDB/V2T"]
    assert agg["RegDB/V2T"]["Rank-1"] == pytest.approx(70.0)
    assert agg["RegDB/V2T"]["Rank-1_std"] == pytest.approx((200 / 3) ** 0.5)
    assert agg["RegDB/V2T"]["num_runs"] == 3
    assert "70.00 ±" in capsys.readouterr().out
    assert tool.main([str(tmp_path / "missing")]) == 2
