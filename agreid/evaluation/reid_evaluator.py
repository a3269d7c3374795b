"""Re-identification evaluator for one protocol: gathers features from every rank and reports CMC, mAP and mINP."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Sequence, Union

import numpy as np
import torch

from agreid.data.records import ImageRecord, view_index
from agreid.evaluation.distance import compute_distance
from agreid.evaluation.evaluator import DatasetEvaluator
from agreid.evaluation.rank import evaluate_ranking
from agreid.registries import EVALUATOR_REGISTRY
from agreid.utils import comm

REPORTED_RANKS = (1, 5, 10)


def _labels(records: Sequence[ImageRecord]) -> Dict[str, np.ndarray]:
    return {"pids": np.fromiter((r.pid for r in records), dtype=np.int64, count=len(records)),
            "camids": np.fromiter((r.camid for r in records), dtype=np.int64, count=len(records)),
            "views": np.fromiter((view_index(r.view) for r in records), dtype=np.int64,
                                 count=len(records))}


def evaluate_features(qf: torch.Tensor, gf: torch.Tensor, q_records: Sequence[ImageRecord],
                      g_records: Sequence[ImageRecord],
                      rule: Union[str, Callable[..., torch.Tensor]] = "market", metric: str = "cosine",
                      feat_norm: bool = False, max_rank: int = 50) -> Dict[str, Any]:
    """Score query features ``qf`` against gallery features ``gf`` (rows aligned with the records).

    Returns percentages (0-100): ``Rank-k`` for k in 1, 5, 10 (those within ``max_rank``), ``mAP``,
    ``mINP`` and ``metric`` = (mAP + Rank-1) / 2, plus the counts ``num_query`` and ``num_valid``.
    """
    if qf.shape[0] != len(q_records) or gf.shape[0] != len(g_records):
        raise ValueError(f"Feature rows ({qf.shape[0]} query, {gf.shape[0]} gallery) do not match the "
                         f"records ({len(q_records)} query, {len(g_records)} gallery)")
    q, g = _labels(q_records), _labels(g_records)
    dist = compute_distance(qf, gf, metric=metric, normalize=feat_norm)
    res = evaluate_ranking(dist, q["pids"], g["pids"], q["camids"], g["camids"], rule=rule,
                           q_views=q["views"], g_views=g["views"], max_rank=max_rank)
    del dist
    cmc = res["cmc"]
    out: Dict[str, Any] = {f"Rank-{k}": 100.0 * float(cmc[k - 1]) for k in REPORTED_RANKS if k <= len(cmc)}
    out["mAP"] = 100.0 * res["mAP"]
    out["mINP"] = 100.0 * res["mINP"]
    out["metric"] = (out["mAP"] + 100.0 * float(cmc[0])) / 2.0
    out["num_query"] = len(q_records)
    out["num_valid"] = int(res["num_valid"])
    return out


@EVALUATOR_REGISTRY.register()
class ReidEvaluator(DatasetEvaluator):
    """Evaluates one protocol from a loader over ``list(query) + list(gallery)`` whose batches carry ``indices``.

    Features are kept as float32 on CPU with their positions, so any sharding of the list across
    ranks works: ``evaluate`` gathers tensors from every rank and checks each position arrived once.
    """

    def __init__(self, query: Sequence[ImageRecord], gallery: Sequence[ImageRecord],
                 rule: Union[str, Callable[..., torch.Tensor]] = "market", metric: str = "cosine",
                 feat_norm: bool = False, max_rank: int = 50) -> None:
        self.query = tuple(query)
        self.gallery = tuple(gallery)
        self.rule = rule
        self.metric = metric
        self.feat_norm = feat_norm
        self.max_rank = max_rank
        self._feats: List[torch.Tensor] = []
        self._indices: List[torch.Tensor] = []

    @property
    def num_items(self) -> int:
        return len(self.query) + len(self.gallery)

    def reset(self) -> None:
        self._feats, self._indices = [], []

    def process(self, batch: Mapping[str, Any], outputs: torch.Tensor) -> None:
        """Store one batch of features (B×D) with the batch's ``indices`` into query + gallery."""
        if "indices" not in batch:
            raise KeyError("ReidEvaluator needs batch['indices'] (positions into query + gallery); "
                           "build the test loader over list(query) + list(gallery) with indices.")
        indices = torch.as_tensor(batch["indices"]).reshape(-1).long().cpu()
        feats = outputs.detach().float().cpu()
        if feats.dim() != 2 or feats.shape[0] != indices.numel():
            raise ValueError(f"Expected features of shape ({indices.numel()}, D) for a batch of "
                             f"{indices.numel()} indices, got {tuple(feats.shape)}")
        self._feats.append(feats)
        self._indices.append(indices)

    def _gather(self) -> torch.Tensor:
        """All ranks' features placed at their positions (N×D), identical on every rank."""
        local_dim = self._feats[0].shape[1] if self._feats else -1
        dims = {int(d) for d in torch.cat(comm.all_gather_tensor(torch.tensor([local_dim])))} - {-1}
        if len(dims) != 1:
            raise RuntimeError(f"ReidEvaluator: feature widths across ranks are {sorted(dims) or 'none'}; "
                               "expected one width (was the loader empty on every rank?)")
        dim = dims.pop()
        feats = torch.cat(self._feats) if self._feats else torch.zeros(0, dim)
        indices = torch.cat(self._indices) if self._indices else torch.zeros(0, dtype=torch.long)
        feats = torch.cat(comm.all_gather_tensor(feats))
        indices = torch.cat(comm.all_gather_tensor(indices))
        n = self.num_items
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
            raise RuntimeError(f"ReidEvaluator: indices must lie in [0, {n}) (query + gallery), "
                               f"got range [{int(indices.min())}, {int(indices.max())}]")
        counts = torch.bincount(indices, minlength=n)
        missing = (counts == 0).nonzero().flatten()
        repeated = (counts > 1).nonzero().flatten()
        if missing.numel() or repeated.numel():
            raise RuntimeError(
                f"ReidEvaluator: every one of the {n} query + gallery items must be processed exactly once "
                f"across ranks, but {missing.numel()} are missing (e.g. {missing[:5].tolist()}) and "
                f"{repeated.numel()} repeated (e.g. {repeated[:5].tolist()}). A sampler that pads shards "
                f"(such as DistributedSampler) or drops the last batch causes this; use an exact "
                f"inference sampler.")
        ordered = torch.empty(n, dim, dtype=feats.dtype)
        ordered[indices] = feats
        return ordered

    def evaluate(self) -> Dict[str, Any]:
        """Gather every rank's features and score the protocol; metrics on the main process, ``{}`` elsewhere."""
        feats = self._gather()
        if not comm.is_main_process():
            return {}
        nq = len(self.query)
        return evaluate_features(feats[:nq], feats[nq:], self.query, self.gallery, rule=self.rule,
                                 metric=self.metric, feat_norm=self.feat_norm, max_rank=self.max_rank)
