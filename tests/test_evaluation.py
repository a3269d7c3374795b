"""Tests for agreid.evaluation: ranking against a brute-force reference, distances, evaluators, tables."""
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from agreid.data.records import AERIAL, GROUND, ImageRecord
from agreid.evaluation import (DatasetEvaluator, ReidEvaluator, compute_distance, evaluate_features,
                               evaluate_ranking, format_results_table, inference_on_dataset,
                               results_markdown, save_results)
from agreid.registries import EVALUATOR_REGISTRY, GALLERY_RULE_REGISTRY
from agreid.utils import comm


def brute_force(dist, q_pids, g_pids, q_cams, g_cams, rule, max_rank):
    """Per-query reference written straight from the definitions, in plain Python."""
    cmc_sum = [0.0] * max_rank
    ap_sum = inp_sum = 0.0
    valid = 0
    for i in range(len(q_pids)):
        kept = [j for j in range(len(g_pids))
                if rule == "none" or not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])]
        order = sorted(kept, key=lambda j: (float(dist[i][j]), j))
        hits = [g_pids[j] == q_pids[i] for j in order]
        if not any(hits):
            continue
        valid += 1
        ranks = [r + 1 for r, h in enumerate(hits) if h]
        for k in range(ranks[0] - 1, max_rank):
            cmc_sum[k] += 1.0
        ap_sum += sum((n + 1) / r for n, r in enumerate(ranks)) / len(ranks)
        inp_sum += len(ranks) / ranks[-1]
    return {"cmc": [min(c / valid, 1.0) for c in cmc_sum], "mAP": ap_sum / valid,
            "mINP": inp_sum / valid, "num_valid": valid}


def random_problem(seed, num_q=37, num_g=53):
    """Integer distances (many ties), query ids without gallery match, gallery-only distractor ids."""
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, 6, size=(num_q, num_g)).astype(np.float32)
    q_pids = rng.integers(0, 10, size=num_q)
    q_pids[:3] = 50 + np.arange(3)
    g_pids = np.concatenate([rng.integers(0, 8, size=num_g - 6), 100 + np.arange(6)])
    q_cams = rng.integers(0, 3, size=num_q)
    g_cams = rng.integers(0, 3, size=num_g)
    return dist, q_pids, g_pids, q_cams, g_cams


def assert_same(res, ref):
    np.testing.assert_allclose(res["cmc"], ref["cmc"], rtol=0, atol=1e-12)
    assert res["mAP"] == pytest.approx(ref["mAP"], abs=1e-12)
    assert res["mINP"] == pytest.approx(ref["mINP"], abs=1e-12)
    assert res["num_valid"] == ref["num_valid"]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rule", ["market", "none"])
@pytest.mark.parametrize("chunk", [1, 5, None])
def test_matches_brute_force(seed, rule, chunk):
    dist, qp, gp, qc, gc = random_problem(seed)
    max_rank = 80
    res = evaluate_ranking(dist, qp, gp, qc, gc, rule=rule, max_rank=max_rank, chunk_size=chunk)
    ref = brute_force(dist, qp, gp, qc, gc, rule, max_rank)
    assert res["cmc"].shape == (max_rank,) and res["cmc"].dtype == np.float64
    assert res["num_valid"] < len(qp)
    assert_same(res, ref)


def test_torch_and_float64_inputs_agree_with_numpy():
    dist, qp, gp, qc, gc = random_problem(7)
    ref = evaluate_ranking(dist, qp, gp, qc, gc)
    as_torch = evaluate_ranking(torch.from_numpy(dist).double(), torch.from_numpy(qp), torch.from_numpy(gp),
                                torch.from_numpy(qc), list(gc))
    assert_same(as_torch, ref)


def test_chunk_size_invariance_exact():
    rng = np.random.default_rng(3)
    dist = rng.random((64, 200)).astype(np.float32)
    dist[:, ::7] = 0.5
    qp, gp = rng.integers(0, 20, 64), rng.integers(0, 25, 200)
    qc, gc = rng.integers(0, 4, 64), rng.integers(0, 4, 200)
    tiny = evaluate_ranking(dist, qp, gp, qc, gc, chunk_size=1)
    huge = evaluate_ranking(dist, qp, gp, qc, gc, chunk_size=10_000)
    assert np.array_equal(tiny["cmc"], huge["cmc"])
    assert tiny["mAP"] == huge["mAP"] and tiny["mINP"] == huge["mINP"]
    assert tiny["num_valid"] == huge["num_valid"]


HAND_DIST = np.array([[0.1, 0.0, 0.3, 0.3, 0.5, 0.2],
                      [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
                      [0.4, 0.9, 0.2, 0.2, 0.1, 0.7]])
HAND_Q = ([1, 2, 3], [0, 1, 0])
HAND_G = ([2, 1, 1, 3, 1, 4], [1, 0, 1, 1, 2, 0])


def test_hand_computed_market():
    res = evaluate_ranking(HAND_DIST, HAND_Q[0], HAND_G[0], HAND_Q[1], HAND_G[1], max_rank=8)
    assert res["num_valid"] == 2
    np.testing.assert_allclose(res["cmc"], [0, 0, 1, 1, 1, 1, 1, 1])
    assert res["mAP"] == pytest.approx((11 / 30 + 1 / 3) / 2)
    assert res["mINP"] == pytest.approx((2 / 5 + 1 / 3) / 2)


def test_hand_computed_none_rule():
    res = evaluate_ranking(HAND_DIST, HAND_Q[0], HAND_G[0], HAND_Q[1], HAND_G[1], rule="none", max_rank=3)
    assert res["num_valid"] == 3
    np.testing.assert_allclose(res["cmc"], [2 / 3, 2 / 3, 1.0])
    assert res["mAP"] == pytest.approx((2 / 3 + 1.0 + 1 / 3) / 3)
    assert res["mINP"] == pytest.approx((3 / 6 + 1.0 + 1 / 3) / 3)


def test_custom_rule_receives_views():
    seen = {}

    def cross_view(q, g):
        seen["views"] = (q.views.tolist(), g.views.tolist())
        return q.views[:, None] != g.views[None, :]

    dist = np.array([[0.0, 1.0, 2.0]])
    res = evaluate_ranking(dist, [1], [1, 1, 2], [0], [1, 2, 3], rule=cross_view,
                           q_views=[0], g_views=[0, 1, 1], max_rank=2)
    assert seen["views"] == ([0], [0, 1, 1])
    np.testing.assert_allclose(res["cmc"], [1.0, 1.0])
    assert {"market", "none"} <= set(GALLERY_RULE_REGISTRY.names())


def test_errors():
    with pytest.raises(ValueError, match="No query"):
        evaluate_ranking(np.zeros((2, 3)), [1, 2], [3, 4, 5], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_ranking(np.array([[np.nan, 0.0]]), [1], [1, 2], [0], [1, 1])
    with pytest.raises(ValueError, match="g_pids"):
        evaluate_ranking(np.zeros((1, 3)), [1], [1, 2], [0], [1, 1, 1])
    with pytest.raises(KeyError, match="market"):
        evaluate_ranking(np.zeros((1, 2)), [1], [1, 2], [0], [1, 1], rule="markt")


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_compute_distance_formulas(chunk):
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((7, 5)), rng.standard_normal((11, 5))
    cos = 1 - (q @ g.T) / np.linalg.norm(q, axis=1)[:, None] / np.linalg.norm(g, axis=1)[None, :]
    sq = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    qn, gn = q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
    sq_norm = ((qn[:, None, :] - gn[None, :, :]) ** 2).sum(-1)
    cases = [("cosine", False, cos), ("euclidean", False, sq), ("euclidean", True, sq_norm),
             ("inner", False, -(q @ g.T)), ("inner", True, -(qn @ gn.T))]
    for metric, norm, expected in cases:
        out = compute_distance(torch.from_numpy(q), g, metric=metric, normalize=norm, chunk_size=chunk)
        assert out.dtype == torch.float64 and out.shape == (7, 11)
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-10)
    same = compute_distance(torch.from_numpy(q).float(), torch.from_numpy(q).float(), metric="euclidean")
    assert same.dtype == torch.float32 and float(same.min()) >= 0.0
    with pytest.raises(ValueError, match="metric"):
        compute_distance(q, g, metric="manhattan")


class TinyNet(nn.Module):
    """Width-asymmetric feature extractor over batch['images'] (B, 3, 4, 6)."""

    def __init__(self, normalise_in_place=False):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 4 * 6, 8)
        self.drop = nn.Dropout(0.5)
        self.normalise_in_place = normalise_in_place

    def forward(self, batch):
        images = batch["images"]
        if self.normalise_in_place:
            images.sub_(0.5).div_(2.0)
        return self.drop(self.fc(images.flatten(1)))


def make_records(rng, n, pid_max, offset=0):
    return [ImageRecord(path=f"img{offset + i}.jpg", pid=int(rng.integers(0, pid_max)),
                        camid=int(rng.integers(0, 3)), view=AERIAL if i % 2 else GROUND) for i in range(n)]


def make_batches(images, order, batch_size):
    return [{"images": images[order[s:s + batch_size]].clone(),
             "indices": torch.as_tensor(order[s:s + batch_size])} for s in range(0, len(order), batch_size)]


def test_reid_evaluator_end_to_end_shuffled():
    rng = np.random.default_rng(1)
    query, gallery = make_records(rng, 12, 6), make_records(rng, 30, 8, offset=12)
    images = torch.rand(42, 3, 4, 6)
    model = TinyNet()
    model.train()
    evaluator = EVALUATOR_REGISTRY.get("ReidEvaluator").for_protocol(query, gallery, metric="euclidean",
                                                                     feat_norm=True, max_rank=20)
    order = rng.permutation(42)
    result = inference_on_dataset(model, make_batches(images, order, 5), evaluator, desc="toy")["default"]
    assert model.training and model.drop.training
    with torch.no_grad():
        feats = model.eval()({"images": images})
    dist = compute_distance(feats[:12], feats[12:], metric="euclidean", normalize=True)
    direct = evaluate_ranking(dist, [r.pid for r in query], [r.pid for r in gallery],
                              [r.camid for r in query], [r.camid for r in gallery], max_rank=20)
    assert result["Rank-1"] == pytest.approx(100 * direct["cmc"][0])
    assert result["Rank-5"] == pytest.approx(100 * direct["cmc"][4])
    assert result["Rank-10"] == pytest.approx(100 * direct["cmc"][9])
    assert result["mAP"] == pytest.approx(100 * direct["mAP"])
    assert result["mINP"] == pytest.approx(100 * direct["mINP"])
    assert result["metric"] == pytest.approx((result["mAP"] + result["Rank-1"]) / 2)
    assert result["num_query"] == 12 and result["num_valid"] == direct["num_valid"]
    assert evaluate_features(feats[:12], feats[12:], query, gallery, "market", "euclidean", True, 20) == result


def test_reid_evaluator_index_checks():
    rng = np.random.default_rng(2)
    query, gallery = make_records(rng, 3, 2), make_records(rng, 4, 2, offset=3)
    evaluator = ReidEvaluator.for_protocol(query, gallery)
    evaluator.process({"indices": torch.tensor([0, 1, 2, 3, 4])}, torch.rand(5, 4))
    with pytest.raises(RuntimeError, match="2 are missing"):
        evaluator.evaluate()
    evaluator.process({"indices": torch.tensor([4, 5])}, torch.rand(2, 4))
    with pytest.raises(RuntimeError, match="1 repeated"):
        evaluator.evaluate()
    evaluator.reset()
    with pytest.raises(KeyError, match="indices"):
        evaluator.process({"images": torch.rand(2, 3)}, torch.rand(2, 4))


def test_reid_evaluator_gathers_simulated_ranks(monkeypatch):
    rng = np.random.default_rng(4)
    query, gallery = make_records(rng, 6, 3), make_records(rng, 10, 3, offset=6)
    feats = torch.randn(16, 5)
    order = rng.permutation(16)
    rank0 = ReidEvaluator.for_protocol(query, gallery, max_rank=10)
    for pos in order[:7]:
        rank0.process({"indices": torch.tensor([pos])}, feats[pos:pos + 1])
    rank1_payload = iter([torch.tensor([5]), feats[order[7:]], torch.as_tensor(order[7:])])
    empty_rank_payload = iter([torch.tensor([-1]), torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)])
    monkeypatch.setattr(comm, "all_gather_tensor",
                        lambda t: [t, next(rank1_payload), next(empty_rank_payload)])
    assert rank0.evaluate() == {"default": evaluate_features(feats[:6], feats[6:], query, gallery, max_rank=10)}


class RecordingEvaluator(DatasetEvaluator):
    def reset(self):
        self.outputs = []

    def process(self, batch, outputs):
        self.outputs.append(outputs)

    def evaluate(self):
        return {"outputs": torch.cat(self.outputs)}


@pytest.mark.parametrize("in_place", [False, True])
def test_flip_test_averages_and_never_mutates_inputs(in_place):
    images = torch.rand(4, 3, 4, 6)
    batch = {"images": images.clone(), "indices": torch.arange(4)}
    model = TinyNet(normalise_in_place=in_place)
    out = inference_on_dataset(model, [batch], RecordingEvaluator(), flip_test=True)["outputs"]
    reference = TinyNet(normalise_in_place=in_place).eval()
    with torch.no_grad():
        expected = (reference({"images": images.clone()}) + reference({"images": images.flip(-1)})) / 2
    torch.testing.assert_close(out, expected)
    if not in_place:
        assert torch.equal(batch["images"], images)


RESULTS = {"A2G": {"Rank-1": 81.234, "Rank-5": 90.0, "Rank-10": 93.5, "mAP": 70.1, "mINP": 40.25,
                   "metric": 75.667, "num_query": 100, "num_valid": 98},
           "G2A_long_name": {"Rank-1": 5.0, "mAP": 3.0}}


def test_text_and_markdown_tables():
    text = format_results_table(RESULTS).splitlines()
    assert text[0].split() == ["protocol", "R1", "R5", "R10", "mAP", "mINP"]
    assert set(text[1]) == {"-"}
    assert text[2].split() == ["A2G", "81.23", "90.00", "93.50", "70.10", "40.25"]
    assert text[3].split() == ["G2A_long_name", "5.00", "-", "-", "3.00", "-"]
    assert len({len(line) for line in text}) == 1
    md = results_markdown(RESULTS).splitlines()
    assert md[0] == "| protocol | R1 | R5 | R10 | mAP | mINP |"
    assert md[2] == "| A2G | 81.23 | 90.00 | 93.50 | 70.10 | 40.25 |"


def test_save_results_atomic(tmp_path):
    results = dict(RESULTS, extra={"Rank-1": np.float64(1.5), "cmc": np.array([0.5, 1.0])})
    json_path, md_path = save_results(results, str(tmp_path / "out"), name="final")
    assert sorted(os.listdir(tmp_path / "out")) == ["final.json", "final.md"]
    with open(json_path) as f:
        loaded = json.load(f)
    assert loaded["A2G"]["num_valid"] == 98 and loaded["extra"]["cmc"] == [0.5, 1.0]
    with open(md_path) as f:
        assert f.read() == results_markdown(results)


def test_soft_biometric_masking_is_opt_in_from_config():
    """TEST.SOFT_BIOMETRICS reaches the scoring options only when enabled (it uses ground-truth attributes)."""
    from agreid.config import get_cfg
    from agreid.engine.testing import scoring_options

    cfg = get_cfg()
    assert scoring_options(cfg).soft_biometrics is None
    cfg.merge_from_list(["TEST.SOFT_BIOMETRICS.ENABLED", "True", "TEST.SOFT_BIOMETRICS.PENALTY", "7.0"])
    mask = scoring_options(cfg).soft_biometrics
    assert mask is not None and mask.penalty == 7.0
