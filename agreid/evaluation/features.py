"""Collect per-item features from every rank by position, without pickling them through an object gather."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch

from agreid.data.records import ImageRecord
from agreid.evaluation.evaluator import DatasetEvaluator
from agreid.utils import comm


class FeatureCollector(DatasetEvaluator):
    """Stores features for ``records``; feed it a loader over exactly that list whose batches carry ``indices``.

    Any sharding of the list across ranks works: :meth:`gather` checks that each position arrived once.
    A model may return one B×D tensor or a dict of named B×D features (AGW's ``pool`` and ``bn``); each name
    is then collected on its own (:attr:`feature_names`, :meth:`gather` by name).
    """

    def __init__(self, records: Sequence[ImageRecord]) -> None:
        self.records = list(records)
        self._feats: Dict[Optional[str], List[torch.Tensor]] = {}
        self._indices: List[torch.Tensor] = []

    @property
    def num_items(self) -> int:
        return len(self.records)

    @property
    def feature_names(self) -> List[Optional[str]]:
        """The names of the collected features, ``[None]`` for a model returning one tensor."""
        return list(self._feats) or [None]

    def reset(self) -> None:
        self._feats, self._indices = {}, []

    def process(self, batch: Mapping[str, Any], outputs: Any) -> None:
        """Store one batch of features (B×D, or a dict of named B×D) with the batch's ``indices`` into ``records``."""
        if "indices" not in batch:
            raise KeyError(f"{type(self).__name__} needs batch['indices'] (positions into its records)")
        indices = torch.as_tensor(batch["indices"]).reshape(-1).long().cpu()
        named = dict(outputs) if isinstance(outputs, Mapping) else {None: outputs}
        if self._indices and set(named) != set(self._feats):
            raise ValueError(f"The model returned features {sorted(map(str, named))} after "
                             f"{sorted(map(str, self._feats))} in earlier batches")
        for name, out in named.items():
            feats = out.detach().float().cpu()
            if feats.dim() != 2 or feats.shape[0] != indices.numel():
                label = f"'{name}' " if name is not None else ""
                raise ValueError(f"Expected {label}features of shape ({indices.numel()}, D) for a batch of "
                                 f"{indices.numel()} indices, got {tuple(feats.shape)}")
            self._feats.setdefault(name, []).append(feats)
        self._indices.append(indices)

    def gather(self, name: Optional[str] = None) -> torch.Tensor:
        """All ranks' features (the one named ``name``; None: the only one) at their positions (N×D), identical
        on every rank."""
        if name is None and len(self._feats) > 1:
            raise ValueError(f"The model returned several features {sorted(self._feats)}; gather them by name")
        chunks = next(iter(self._feats.values()), []) if name is None else self._feats.get(name, [])
        local_dim = chunks[0].shape[1] if chunks else -1
        dims = {int(d) for d in torch.cat(comm.all_gather_tensor(torch.tensor([local_dim])))} - {-1}
        if len(dims) != 1:
            raise RuntimeError(f"Feature gather: feature widths across ranks are {sorted(dims) or 'none'}; "
                               "expected one width (was the loader empty on every rank?)")
        dim = dims.pop()
        feats = torch.cat(chunks) if chunks else torch.zeros(0, dim)
        indices = torch.cat(self._indices) if self._indices else torch.zeros(0, dtype=torch.long)
        feats = torch.cat(comm.all_gather_tensor(feats))
        indices = torch.cat(comm.all_gather_tensor(indices))
        n = self.num_items
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
            raise RuntimeError(f"Feature gather: indices must lie in [0, {n}), "
                               f"got range [{int(indices.min())}, {int(indices.max())}]")
        counts = torch.bincount(indices, minlength=n)
        missing = (counts == 0).nonzero().flatten()
        repeated = (counts > 1).nonzero().flatten()
        if missing.numel() or repeated.numel():
            raise RuntimeError(
                f"Feature gather: every one of the {n} items must be processed exactly once across ranks, "
                f"but {missing.numel()} are missing (e.g. {missing[:5].tolist()}) and {repeated.numel()} "
                f"repeated (e.g. {repeated[:5].tolist()}). A sampler that pads shards (such as "
                f"DistributedSampler) or drops the last batch causes this; use an exact inference sampler.")
        ordered = torch.empty(n, dim, dtype=feats.dtype)
        ordered[indices] = feats
        return ordered

    def evaluate(self) -> Dict[str, Any]:
        """``{"features": N×D}`` in ``records`` order on every rank (a dict of them for named features)."""
        names = self.feature_names
        if names == [None]:
            return {"features": self.gather()}
        return {"features": {name: self.gather(name) for name in names}}
