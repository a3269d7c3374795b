"""The torch Dataset over image records, and the collate function that batches its items."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from agreid.data.image_io import read_image
from agreid.data.records import BATCH_EXTRAS, ImageRecord, modality_index, view_index

Item = Union[int, Tuple[int, int]]


class ReIDImageSet(Dataset):
    """Decode and transform one :class:`ImageRecord` per item.

    Index with ``i`` (evaluation: no randomness) or ``(i, aug_seed)`` (training): the transform then gets
    ``np.random.default_rng(aug_seed)``, so an item's augmentation depends on its seed alone, not on the
    worker that loads it or on any global random state.
    """

    def __init__(self, records: Sequence[ImageRecord], transform: Optional[Callable[..., Any]] = None,
                 decoder: str = "opencv") -> None:
        self.records = list(records)
        self.transform = transform
        self.decoder = decoder

    def __len__(self) -> int:
        return len(self.records)

    @staticmethod
    def _split(item: Any) -> Tuple[int, Optional[int]]:
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise TypeError(f"A training item must be (index, aug_seed), got {item!r}")
            return int(item[0]), int(item[1])
        if isinstance(item, (int, np.integer)):
            return int(item), None
        raise TypeError(f"ReIDImageSet items are an int index or an (index, aug_seed) pair, got {item!r}")

    def __getitem__(self, item: Item) -> Dict[str, Any]:
        index, seed = self._split(item)
        rec = self.records[index]
        img = read_image(rec.path, self.decoder)
        if self.transform is not None:
            rng = np.random.default_rng(seed) if seed is not None else None
            img = self.transform(img, rng)
        return self.item(rec, index, img)

    @staticmethod
    def item(rec: ImageRecord, index: int, images: Any) -> Dict[str, Any]:
        """The loader's per-item dict: ``images``, the record's labels and position, and ``extras[BATCH_EXTRAS]``."""
        out = {
            "images": images,
            "targets": rec.pid,
            "camids": rec.camid,
            "views": view_index(rec.view),
            "modalities": modality_index(rec.modality),
            "indices": index,
            "paths": rec.path,
        }
        extra = rec.extras.get(BATCH_EXTRAS)
        if isinstance(extra, Mapping) and extra:
            clash = sorted(set(extra) & set(out))
            if clash:
                raise KeyError(f"extras['{BATCH_EXTRAS}'] of '{rec.path}' would overwrite batch key(s) {clash}")
            out.update(extra)
        return out


def collate_batch(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack tensors and arrays; ints become a LongTensor, floats a float tensor, bools a bool tensor; others stay lists."""
    if not items:
        raise ValueError("collate_batch got an empty batch")
    out: Dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        first = values[0]
        if isinstance(first, torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(first, np.ndarray):
            out[key] = torch.from_numpy(np.stack(values))
        elif isinstance(first, (bool, np.bool_)):
            out[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, (int, np.integer)):
            out[key] = torch.tensor(values, dtype=torch.long)
        elif isinstance(first, (float, np.floating)):
            out[key] = torch.tensor(values, dtype=torch.float32)
        else:
            out[key] = values
    return out
