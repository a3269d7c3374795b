"""Re-identification evaluator: one feature pass over a dataset's images, scored for each of its protocols."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

from agreid.data.records import ImageRecord, Protocol
from agreid.evaluation.features import FeatureCollector
from agreid.evaluation.results_table import FEATURE_SEP
from agreid.evaluation.scoring import ScoringOptions, evaluate_protocol
from agreid.registries import EVALUATOR_REGISTRY
from agreid.utils import comm


Positions = Dict[str, Tuple[List[int], List[int]]]


def unique_records(protocols: Mapping[str, Protocol]) -> Tuple[List[ImageRecord], Positions]:
    """Every distinct record of the protocols, in first-seen order, and each protocol's positions in it.

    Protocols of one dataset share images (A→G's gallery is G→A's query), so features are extracted once.
    """
    index: Dict[ImageRecord, int] = {}
    records: List[ImageRecord] = []
    positions: Positions = {}
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
class ReidEvaluator(FeatureCollector):
    """Collects features for ``records`` (feed a loader over exactly that list, batches carrying
    ``indices``) and scores every protocol; the features never pass through a pickled object gather.
    """

    def __init__(self, protocols: Mapping[str, Protocol], options: ScoringOptions = ScoringOptions()) -> None:
        self.protocols = dict(protocols)
        self.options = options
        records, self._positions = unique_records(self.protocols)
        super().__init__(records)

    @classmethod
    def for_protocol(cls, query: Sequence[ImageRecord], gallery: Sequence[ImageRecord], rule: str = "market",
                     **options: Any) -> "ReidEvaluator":
        """An evaluator for one query/gallery pair, named ``"default"`` in the results."""
        return cls({"default": Protocol(tuple(query), tuple(gallery), rule)}, ScoringOptions(**options))

    def evaluate(self) -> Dict[str, Any]:
        """``{protocol: metrics}`` on the main process (percentages), ``{}`` on the others.

        A model returning named features (a dict) is scored once per feature, as ``"<protocol>@<feature>"``.
        """
        names = self.feature_names
        feats = {name: self.gather(name) for name in names}
        if not comm.is_main_process():
            return {}
        results = {}
        for feature in names:
            for name, proto in self.protocols.items():
                q_pos, g_pos = self._positions[name]
                key = name if feature is None else f"{name}{FEATURE_SEP}{feature}"
                results[key] = evaluate_protocol(feats[feature][q_pos], feats[feature][g_pos], proto, self.options)
        return results
