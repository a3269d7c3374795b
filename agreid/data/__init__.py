"""Data: record types, dataset adapters, transforms, samplers and loaders."""
from __future__ import annotations

from typing import Any

from agreid.data.records import (AERIAL, CCTV, GROUND, INFRARED, VISIBLE, WEARABLE, DatasetError,
                                 ImageRecord, Protocol, ReIDDataset)


def build_dataset(name: str, root: str, **options: Any) -> ReIDDataset:
    """Build the registered dataset ``name`` from the data root ``root``.

    ``options`` are adapter-specific (e.g. ``trial=3`` for RegDB). The result has ``train``
    (relabelled records) and ``protocols`` (name → :class:`Protocol`).
    """
    import agreid.data.datasets  # noqa: F401  (registers the adapters)
    from agreid.registries import DATASET_REGISTRY

    return DATASET_REGISTRY.get(name)(root, **options)


__all__ = ["build_dataset", "ImageRecord", "Protocol", "ReIDDataset", "DatasetError",
           "AERIAL", "GROUND", "WEARABLE", "CCTV", "VISIBLE", "INFRARED"]
