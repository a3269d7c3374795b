"""X-TFCLIP's soft-biometric distance masking. It uses GROUND-TRUTH attribute annotations at test time.

``BiDAlab/X-TFCLIP`` (``datasets/load_softbiometrics_np.py``, ``do_inference_rrs_visualize``) reads the
per-identity attributes of the query and gallery folders (AG-VPReID ``attributes/<case>/{query,gallery}.csv``)
and adds ``penalty`` (100) to the query–gallery distance for each of gender (column 0, unknown code 2), age
(1, unknown 8), ethnicity (4, unknown 4) and body volume (3, unknown 3) on which both sides are known and
differ. An identity missing from the CSV counts as unknown everywhere. Because the attributes are labels of
the test identities, scores obtained this way are not comparable with feature-only scores: the option is off
by default (TEST.SOFT_BIOMETRICS.ENABLED), logged as such, and its rows in the results table are marked.

Attributes come from each record's ``extras["attributes"]`` (the 15 codes in the CSV's column order, filled by
the AGVPReID adapter).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from agreid.config.config import ConfigError
from agreid.data.records import ImageRecord

logger = logging.getLogger(__name__)

GT_FLAG = "uses_gt_attributes"
"""Result key set to 1.0 in the metrics of a protocol scored with ground-truth attribute masking."""
XTFCLIP_COLUMNS = (0, 1, 4, 3)  # gender, age, ethnicity, body volume (in the order the reference sums them)
XTFCLIP_UNKNOWN = (2, 8, 4, 3)


@dataclass(frozen=True)
class SoftBiometricMask:
    """Which attribute columns are compared, each column's "unknown" code, and the distance added per mismatch."""

    columns: Tuple[int, ...] = XTFCLIP_COLUMNS
    unknown: Tuple[int, ...] = XTFCLIP_UNKNOWN
    penalty: float = 100.0

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.unknown) or not self.columns:
            raise ConfigError(f"TEST.SOFT_BIOMETRICS: COLUMNS {list(self.columns)} and UNKNOWN {list(self.unknown)} "
                              f"must be non-empty and of equal length")


def attribute_matrix(records: Sequence[ImageRecord], mask: SoftBiometricMask) -> Tuple[np.ndarray, np.ndarray]:
    """(codes, known): N×C attribute codes of ``mask.columns`` and whether each is known (not the unknown code,
    and the record has attributes at all)."""
    n, c = len(records), len(mask.columns)
    codes = np.zeros((n, c), dtype=np.int64)
    known = np.zeros((n, c), dtype=bool)
    for i, rec in enumerate(records):
        attrs = rec.extras.get("attributes") if rec.extras else None
        if attrs is None:
            continue
        attrs = np.asarray(attrs)
        if attrs.shape[0] <= max(mask.columns):
            raise ValueError(f"Record '{rec.path}' has {attrs.shape[0]} attribute codes; soft-biometric column "
                             f"{max(mask.columns)} does not exist")
        codes[i] = attrs[list(mask.columns)]
        known[i] = codes[i] != np.asarray(mask.unknown)
    return codes, known


def soft_biometric_penalty(q_records: Sequence[ImageRecord], g_records: Sequence[ImageRecord],
                           mask: SoftBiometricMask) -> torch.Tensor:
    """Q×G float32: ``penalty`` × the number of compared attributes known on both sides and different."""
    qc, qk = attribute_matrix(q_records, mask)
    gc, gk = attribute_matrix(g_records, mask)
    differ = (qc[:, None, :] != gc[None, :, :]) & qk[:, None, :] & gk[None, :, :]
    return torch.from_numpy(differ.sum(axis=2).astype(np.float32) * np.float32(mask.penalty))


def apply_soft_biometrics(dist: torch.Tensor, q_records: Sequence[ImageRecord], g_records: Sequence[ImageRecord],
                          mask: SoftBiometricMask) -> torch.Tensor:
    """``dist`` plus :func:`soft_biometric_penalty`; logs that ground-truth test annotations are used."""
    logger.warning("Soft-biometric distance masking is ON: it uses ground-truth attribute annotations of the test "
                   "identities (TEST.SOFT_BIOMETRICS); these scores are not feature-only scores")
    return dist + soft_biometric_penalty(q_records, g_records, mask).to(device=dist.device, dtype=dist.dtype)


def soft_biometric_options(cfg) -> Optional[SoftBiometricMask]:
    """TEST.SOFT_BIOMETRICS as a :class:`SoftBiometricMask`, or None when disabled (the default)."""
    s = cfg.TEST.SOFT_BIOMETRICS
    if not s.ENABLED:
        return None
    return SoftBiometricMask(columns=tuple(int(c) for c in s.COLUMNS), unknown=tuple(int(u) for u in s.UNKNOWN),
                             penalty=float(s.PENALTY))


__all__ = ["SoftBiometricMask", "attribute_matrix", "soft_biometric_penalty", "apply_soft_biometrics",
           "soft_biometric_options", "GT_FLAG", "XTFCLIP_COLUMNS", "XTFCLIP_UNKNOWN"]
