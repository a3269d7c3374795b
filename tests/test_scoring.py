"""Protocol scoring: multi-trial mean and spread, TPR@FPR, re-ranking and query expansion wiring."""
import numpy as np
import pytest
import torch

from agreid.data.records import ImageRecord, Protocol
from agreid.evaluation import (ScoringOptions, compute_distance, evaluate_protocol, evaluate_ranking, re_ranking,
                               score_features, tpr_at_fpr)


def recs(pids, cams, prefix):
    return tuple(ImageRecord(f"{prefix}{i}.jpg", int(p), int(c)) for i, (p, c) in enumerate(zip(pids, cams)))


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    q = recs(rng.integers(0, 6, 12), rng.integers(0, 2, 12), "q")
    g = recs(np.concatenate([np.arange(6), rng.integers(0, 6, 24)]), rng.integers(2, 4, 30), "g")
    return q, g, torch.randn(12, 8), torch.randn(30, 8)


def test_trials_report_mean_and_std(problem):
    q, g, qf, gf = problem
    trials = ((None, tuple(range(0, 20))), (tuple(range(6)), tuple(range(10, 30))))
    res = evaluate_protocol(qf, gf, Protocol(q, g, "market", trials=trials))
    runs = [score_features(qf, gf[:20], q, g[:20]), score_features(qf[:6], gf[10:], q[:6], g[10:])]
    for key in ("Rank-1", "mAP", "mINP"):
        vals = [r[key] for r in runs]
        assert res[key] == pytest.approx(np.mean(vals)) and res[f"{key}_std"] == pytest.approx(np.std(vals))
    assert res["num_trials"] == 2


def test_tpr_at_fpr_from_definition():
    rng = np.random.default_rng(1)
    dist = rng.random((20, 50))
    qp, gp = rng.integers(0, 5, 20), rng.integers(0, 5, 50)
    qc, gc = np.zeros(20, int), np.ones(50, int)
    res = tpr_at_fpr(dist, qp, gp, qc, gc, fprs=(0.01, 0.1))
    same = qp[:, None] == gp[None, :]
    pos, neg = dist[same], np.sort(dist[~same])
    for f in (0.01, 0.1):
        threshold = neg[int(np.floor(f * neg.size))]
        assert (neg < threshold).mean() <= f
        assert res[f"TPR@FPR={f:.0e}"] == pytest.approx((pos < threshold).mean())


def test_rerank_and_aqe_options_are_applied(problem):
    q, g, qf, gf = problem
    opts = ScoringOptions(metric="euclidean", rerank=(5, 3, 0.3), roc=True)
    res = score_features(qf, gf, q, g, "market", opts)
    d = re_ranking(compute_distance(qf, gf, "euclidean"), compute_distance(qf, qf, "euclidean"),
                   compute_distance(gf, gf, "euclidean"), k1=5, k2=3, lambda_value=0.3)
    direct = evaluate_ranking(d, [r.pid for r in q], [r.pid for r in g], [r.camid for r in q], [r.camid for r in g])
    assert res["mAP"] == pytest.approx(100 * direct["mAP"]) and "TPR@FPR=1e-02" in res
    plain = score_features(qf, gf, q, g, "market", ScoringOptions(metric="euclidean"))
    assert plain["mAP"] != res["mAP"]
    with_aqe = score_features(qf, gf, q, g, "market", ScoringOptions(metric="euclidean", aqe=(1, 3, 3.0)))
    assert with_aqe["mAP"] != plain["mAP"]
    with pytest.raises(ValueError, match="MAX_ITEMS"):
        score_features(qf, gf, q, g, "market", ScoringOptions(rerank=(5, 3, 0.3), rerank_max_items=10))
