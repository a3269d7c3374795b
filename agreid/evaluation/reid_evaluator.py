"""Re-identification evaluator: one feature pass over a dataset's images, scored for each of its protocols."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch

from agreid.data.records import ImageRecord, Protocol
from agreid.evaluation.evaluator import DatasetEvaluator
from agreid.evaluation.scoring import ScoringOptions, evaluate_protocol
from agreid.registries import EVALUATOR_REGISTRY
from agreid.utils import comm


def unique_records(protocols: Mapping[str, Protocol]) -> Tuple[List[ImageRecord], Dict[str, Tuple[List[int], List[int]]]]:
    """Every distinct record of the protocols, in first-seen order, and each protocol's positions in it.

    Protocols of one dataset share images (A→G's gallery is G→A's query), so features are extracted once.
    """
    index: Dict[ImageRecord, int] = {}
    records: List[ImageRecord] = []
    positions: Dict[str, Tuple[List[int], List[int]]] = {}
    for name, proto in protocols.items():
        sides = []
        for side in (proto.query, proto.gallery):
            pos = []
            for r in side:
                if r not in index:
                    index[r] = len(records)
                    records.append(r)
                pos.append(index[r])
            sides.append(pos)
        positions[name] = (sides[0], sides[1])
    return records, positions


@EVALUATOR_REGISTRY.register()
class ReidEvaluator(DatasetEvaluator):
    """Collects features for ``records`` (feed a loader over exactly that list, batches carrying
    ``indices``) and scores every protocol; the features never pass through a pickled object gather.
    """

    def __init__(self, protocols: Mapping[str, Protocol], options: ScoringOptions = ScoringOptions()) -> None:
        self.protocols = dict(protocols)
        self.options = options
        self.records, self._positions = unique_records(self.protocols)
        self._feats: List[torch.Tensor] = []
        self._indices: List[torch.Tensor] = []

    @classmethod
    def for_protocol(cls, query: Sequence[ImageRecord], gallery: Sequence[ImageRecord], rule: str = "market",
                     **options: Any) -> "ReidEvaluator":
        """An evaluator for one query/gallery pair, named ``"default"`` in the results."""
        return cls({"default": Protocol(tuple(query), tuple(gallery), rule)}, ScoringOptions(**options))

    @property
    def num_items(self) -> int:
        return len(self.records)

    def reset(self) -> None:
        self._feats, self._indices = [], []

    def process(self, batch: Mapping[str, Any], outputs: torch.Tensor) -> None:
        """Store one batch of features (B×D) with the batch's ``indices`` into ``records``."""
        if "indices" not in batch:
            raise KeyError("ReidEvaluator needs batch['indices'] (positions into evaluator.records)")
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
            raise RuntimeError(f"ReidEvaluator: indices must lie in [0, {n}), "
                               f"got range [{int(indices.min())}, {int(indices.max())}]")
        counts = torch.bincount(indices, minlength=n)
        missing = (counts == 0).nonzero().flatten()
        repeated = (counts > 1).nonzero().flatten()
        if missing.numel() or repeated.numel():
            raise RuntimeError(
                f"ReidEvaluator: every one of the {n} items must be processed exactly once across ranks, "
                f"but {missing.numel()} are missing (e.g. {missing[:5].tolist()}) and {repeated.numel()} "
                f"repeated (e.g. {repeated[:5].tolist()}). A sampler that pads shards (such as "
                f"DistributedSampler) or drops the last batch causes this; use an exact inference sampler.")
        ordered = torch.empty(n, dim, dtype=feats.dtype)
        ordered[indices] = feats
        return ordered

    def evaluate(self) -> Dict[str, Any]:
        """``{protocol: metrics}`` on the main process (percentages), ``{}`` on the others."""
        feats = self._gather()
        if not comm.is_main_process():
            return {}
        results = {}
        for name, proto in self.protocols.items():
            q_pos, g_pos = self._positions[name]
            results[name] = evaluate_protocol(feats[q_pos], feats[g_pos], proto, self.options)
        return results
