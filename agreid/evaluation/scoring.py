"""Score features of one protocol: distances, optional AQE / re-ranking, ranking metrics, trials."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from agreid.data.records import ImageRecord, Protocol, view_index
from agreid.evaluation.distance import compute_distance
from agreid.evaluation.rank import evaluate_ranking

REPORTED_RANKS = (1, 5, 10)


@dataclass(frozen=True)
class ScoringOptions:
    """How features become metrics: distance, normalisation, CMC depth and the optional extras.

    ``rerank`` is (k1, k2, lambda) for k-reciprocal re-ranking, ``aqe`` (times, k, alpha) for average
    query expansion; ``rerank_max_items`` guards re-ranking's (Q+G)² memory.
    """

    metric: str = "cosine"
    feat_norm: bool = False
    max_rank: int = 50
    rerank: Optional[Tuple[int, int, float]] = None
    rerank_max_items: int = 40000
    aqe: Optional[Tuple[int, int, float]] = None
    roc: bool = False
    soft_biometrics: Optional[Any] = None  # a SoftBiometricMask: adds GT-attribute penalties (X-TFCLIP, opt-in)


def record_labels(records: Sequence[ImageRecord]) -> Dict[str, np.ndarray]:
    """pids, camids, view codes and time-of-day ids (``extras["time"]``, -1 when absent) as arrays."""
    n = len(records)
    return {"pids": np.fromiter((r.pid for r in records), np.int64, n),
            "camids": np.fromiter((r.camid for r in records), np.int64, n),
            "views": np.fromiter((view_index(r.view) for r in records), np.int64, n),
            "times": np.fromiter((int(r.extras.get("time", -1)) for r in records), np.int64, n)}


def _distance(qf: torch.Tensor, gf: torch.Tensor, opts: ScoringOptions) -> torch.Tensor:
    if opts.aqe is not None:
        from agreid.evaluation.query_expansion import average_query_expansion

        times, k, alpha = opts.aqe
        qf, gf = average_query_expansion(qf, gf, k=int(k), alpha=float(alpha), times=int(times))
    dist = compute_distance(qf, gf, metric=opts.metric, normalize=opts.feat_norm)
    if opts.rerank is None:
        return dist
    n = qf.shape[0] + gf.shape[0]
    if n > opts.rerank_max_items:
        raise ValueError(f"Re-ranking {n} items needs several (Q+G)² matrices; above TEST.RERANK.MAX_ITEMS="
                         f"{opts.rerank_max_items}. Raise the limit if memory allows.")
    from agreid.evaluation.rerank import re_ranking

    k1, k2, lam = opts.rerank
    q_q = compute_distance(qf, qf, metric=opts.metric, normalize=opts.feat_norm)
    g_g = compute_distance(gf, gf, metric=opts.metric, normalize=opts.feat_norm)
    return torch.as_tensor(re_ranking(dist, q_q, g_g, k1=int(k1), k2=int(k2), lambda_value=float(lam)))


def score_features(qf: torch.Tensor, gf: torch.Tensor, q_records: Sequence[ImageRecord],
                   g_records: Sequence[ImageRecord], rule: Union[str, Callable[..., torch.Tensor]] = "market",
                   opts: ScoringOptions = ScoringOptions(), cmc: str = "standard") -> Dict[str, Any]:
    """Percentages (0-100): Rank-k, mAP, mINP, metric = (mAP + Rank-1) / 2, optional TPR@FPR; plus counts."""
    if qf.shape[0] != len(q_records) or gf.shape[0] != len(g_records):
        raise ValueError(f"Feature rows ({qf.shape[0]} query, {gf.shape[0]} gallery) do not match the "
                         f"records ({len(q_records)} query, {len(g_records)} gallery)")
    q, g = record_labels(q_records), record_labels(g_records)
    dist = _distance(qf, gf, opts)
    if opts.soft_biometrics is not None:
        from agreid.evaluation.soft_biometrics import apply_soft_biometrics

        dist = apply_soft_biometrics(dist, q_records, g_records, opts.soft_biometrics)
    res = evaluate_ranking(dist, q["pids"], g["pids"], q["camids"], g["camids"], rule=rule,
                           q_views=q["views"], g_views=g["views"], max_rank=opts.max_rank,
                           q_times=q["times"], g_times=g["times"], cmc_mode=cmc)
    curve = res["cmc"]
    out: Dict[str, Any] = {f"Rank-{k}": 100.0 * float(curve[k - 1]) for k in REPORTED_RANKS if k <= len(curve)}
    out["mAP"] = 100.0 * res["mAP"]
    out["mINP"] = 100.0 * res["mINP"]
    out["metric"] = (out["mAP"] + 100.0 * float(curve[0])) / 2.0
    if opts.roc:
        from agreid.evaluation.roc import tpr_at_fpr

        roc = tpr_at_fpr(dist, q["pids"], g["pids"], q["camids"], g["camids"], rule=rule,
                         q_views=q["views"], g_views=g["views"], q_times=q["times"], g_times=g["times"])
        out.update({k: 100.0 * v for k, v in roc.items()})
    if opts.soft_biometrics is not None:
        from agreid.evaluation.soft_biometrics import GT_FLAG

        out[GT_FLAG] = 1.0
    out["num_query"] = len(q_records)
    out["num_valid"] = int(res["num_valid"])
    return out


def evaluate_features(qf: torch.Tensor, gf: torch.Tensor, q_records: Sequence[ImageRecord],
                      g_records: Sequence[ImageRecord],
                      rule: Union[str, Callable[..., torch.Tensor]] = "market", metric: str = "cosine",
                      feat_norm: bool = False, max_rank: int = 50) -> Dict[str, Any]:
    """Score query features ``qf`` against gallery features ``gf`` (rows aligned with the records)."""
    return score_features(qf, gf, q_records, g_records, rule,
                          ScoringOptions(metric=metric, feat_norm=feat_norm, max_rank=max_rank))


def evaluate_protocol(qf: torch.Tensor, gf: torch.Tensor, protocol: Protocol,
                      opts: ScoringOptions = ScoringOptions()) -> Dict[str, Any]:
    """Score a protocol; with trials, score each (query, gallery) subset and report mean and ``_std``."""
    if not protocol.trials:
        return score_features(qf, gf, protocol.query, protocol.gallery, protocol.rule, opts, protocol.cmc)
    runs = []
    for q_idx, g_idx in protocol.trials:
        qi = list(range(len(protocol.query))) if q_idx is None else list(q_idx)
        gi = list(range(len(protocol.gallery))) if g_idx is None else list(g_idx)
        runs.append(score_features(qf[qi], gf[gi], [protocol.query[i] for i in qi],
                                   [protocol.gallery[i] for i in gi], protocol.rule, opts, protocol.cmc))
    out: Dict[str, Any] = {}
    for key in runs[0]:
        values = np.array([r[key] for r in runs], dtype=np.float64)
        if key in ("num_query", "num_valid"):
            out[key] = int(values.mean().round())
        else:
            out[key] = float(values.mean())
            out[f"{key}_std"] = float(values.std())
    out["num_trials"] = len(runs)
    return out
