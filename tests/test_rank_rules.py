"""Every named gallery rule and the unique-identity CMC, held against a brute force from the definitions."""
import numpy as np
import pytest

from agreid.data.records import view_index
from agreid.evaluation import evaluate_ranking

AER, GRD = view_index("aerial"), view_index("ground")

KEEP = {
    "market": lambda q, g: not (q["pid"] == g["pid"] and q["cam"] == g["cam"]),
    "market_view": lambda q, g: not (q["pid"] == g["pid"] and q["view"] == g["view"]),
    "none": lambda q, g: True,
    "sysu": lambda q, g: not (q["cam"] == 3 and g["cam"] == 2),
    "mssl_s2g": lambda q, g: not (q["pid"] == g["pid"] and g["view"] == AER),
    "mssl_g2s": lambda q, g: not (q["pid"] == g["pid"] and g["view"] == GRD),
    "cross_view": lambda q, g: q["view"] != g["view"],
    "same_view": lambda q, g: q["view"] == g["view"],
    "cross_time": lambda q, g: q["time"] != g["time"],
    "same_time": lambda q, g: q["time"] == g["time"],
}


def brute_force(dist, q, g, rule, max_rank, unique_ids=False):
    """Per query: keep by the rule(s), stable sort, then CMC / AP / INP from their definitions."""
    parts = [KEEP[name] for name in rule.split("+")]
    cmc_sum, ap_sum, inp_sum, valid = np.zeros(max_rank), 0.0, 0.0, 0
    for i in range(len(q)):
        kept = [j for j in range(len(g)) if all(p(q[i], g[j]) for p in parts)]
        order = sorted(kept, key=lambda j: (float(dist[i][j]), j))
        hits = [g[j]["pid"] == q[i]["pid"] for j in order]
        if not any(hits):
            continue
        valid += 1
        ranks = [r + 1 for r, h in enumerate(hits) if h]
        first = ranks[0]
        if unique_ids:
            seen = []
            for j in order:
                if g[j]["pid"] not in seen:
                    seen.append(g[j]["pid"])
                if g[j]["pid"] == q[i]["pid"]:
                    break
            first = len(seen)
        cmc_sum[first - 1:] += 1
        ap_sum += sum((n + 1) / r for n, r in enumerate(ranks)) / len(ranks)
        inp_sum += len(ranks) / ranks[-1]
    return np.minimum(cmc_sum[:max_rank] / valid, 1), ap_sum / valid, inp_sum / valid, valid


def problem(seed, nq=31, ng=57, ties=True):
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, 5, (nq, ng)).astype(np.float32) if ties else rng.random((nq, ng))
    q = [dict(pid=int(rng.integers(0, 8)), cam=int(rng.integers(1, 5)), view=int(rng.integers(0, 2)),
              time=int(rng.integers(0, 2))) for _ in range(nq)]
    g = [dict(pid=int(rng.integers(0, 10)), cam=int(rng.integers(1, 5)), view=int(rng.integers(0, 2)),
              time=int(rng.integers(0, 2))) for _ in range(ng)]
    return dist, q, g


def run(dist, q, g, rule, max_rank, **kw):
    col = lambda side, k: [x[k] for x in side]  # noqa: E731
    return evaluate_ranking(dist, col(q, "pid"), col(g, "pid"), col(q, "cam"), col(g, "cam"), rule=rule,
                            q_views=col(q, "view"), g_views=col(g, "view"), max_rank=max_rank,
                            q_times=col(q, "time"), g_times=col(g, "time"), **kw)


@pytest.mark.parametrize("rule", sorted(KEEP) + ["market+cross_view", "market+same_time", "sysu+cross_time"])
@pytest.mark.parametrize("seed", range(3))
def test_rule_matches_brute_force(rule, seed):
    dist, q, g = problem(seed, ties=seed != 2)
    res = run(dist, q, g, rule, 20, chunk_size=7)
    cmc, mAP, mINP, valid = brute_force(dist, q, g, rule, 20)
    np.testing.assert_allclose(res["cmc"], cmc, atol=1e-12)
    assert res["mAP"] == pytest.approx(mAP, abs=1e-12)
    assert res["mINP"] == pytest.approx(mINP, abs=1e-12)
    assert res["num_valid"] == valid


@pytest.mark.parametrize("rule", ["sysu", "market", "none"])
@pytest.mark.parametrize("seed", range(4))
def test_unique_id_cmc_matches_brute_force(rule, seed):
    dist, q, g = problem(seed, ties=seed % 2 == 0)
    res = run(dist, q, g, rule, 15, cmc_mode="unique_ids")
    cmc, mAP, mINP, valid = brute_force(dist, q, g, rule, 15, unique_ids=True)
    np.testing.assert_allclose(res["cmc"], cmc, atol=1e-12)
    assert res["mAP"] == pytest.approx(mAP, abs=1e-12) and res["num_valid"] == valid


def test_large_gallery_buckets_and_extreme_values_stay_exact():
    rng = np.random.default_rng(7)
    dist = rng.standard_normal((40, 3000)).astype(np.float32)
    dist[:, 10] = np.inf
    dist[3, :] = 1.0
    dist[5, ::3] = dist[5, 0]
    q = [dict(pid=int(p), cam=0, view=0, time=0) for p in rng.integers(0, 50, 40)]
    g = [dict(pid=int(p), cam=1, view=0, time=0) for p in rng.integers(0, 60, 3000)]
    res = run(dist, q, g, "market", 50)
    cmc, mAP, mINP, valid = brute_force(dist, q, g, "market", 50)
    np.testing.assert_allclose(res["cmc"], cmc, atol=1e-12)
    assert res["mAP"] == pytest.approx(mAP, abs=1e-12) and res["mINP"] == pytest.approx(mINP, abs=1e-12)


def test_rule_needing_views_explains_when_missing():
    with pytest.raises(ValueError, match="needs views"):
        evaluate_ranking(np.zeros((1, 2)), [1], [1, 2], [0], [1, 1], rule="cross_view")
