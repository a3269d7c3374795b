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
    import inspect

    import agreid.data.datasets  # noqa: F401  (registers the adapters)
    from agreid.registries import DATASET_REGISTRY

    adapter = DATASET_REGISTRY.get(name)
    params = inspect.signature(adapter).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [k for k in params if k not in ("self", "root")]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise DatasetError(f"Dataset {name} does not take the option(s) {', '.join(unknown)}; it takes: "
                               f"{', '.join(accepted) or '(none)'}. Scope an option to one dataset with "
                               f"DATASETS.OPTIONS entries like '{name}:key=value'.")
    return adapter(root, **options)


__all__ = ["build_dataset", "ImageRecord", "Protocol", "ReIDDataset", "DatasetError",
           "AERIAL", "GROUND", "WEARABLE", "CCTV", "VISIBLE", "INFRARED"]
