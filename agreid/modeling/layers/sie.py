"""Side-information embedding (SIE) rows: which row of a camera / view / camera×view table each image uses."""
from __future__ import annotations

from typing import Optional

import torch

SIE_MODES = ("none", "camera", "view", "camera_view")


def sie_rows(mode: str, camids: Optional[torch.Tensor], views: Optional[torch.Tensor], num_cameras: int,
             num_views: int) -> Optional[torch.Tensor]:
    """Row per image of a ``mode`` SIE table (None for "none"): camera, view, or camera · num_views + view.

    A missing label is an error; an out-of-range one too, checked only on CPU tensors (on a GPU the check would
    cost a host sync every step, and the embedding lookup fails on a bad index anyway). Shared by TransReID's
    all-token SIE and the CLIP family's class-token SIE, which index their tables the same way.
    """
    if mode not in SIE_MODES:
        raise ValueError(f"Unknown SIE mode '{mode}'; choose one of {SIE_MODES}")
    if mode == "none":
        return None
    labels = []
    if mode in ("camera", "camera_view"):
        labels.append((camids, num_cameras, "camera id", "MODEL.NUM_CAMERAS"))
    if mode in ("view", "camera_view"):
        labels.append((views, num_views, "view code", "MODEL.NUM_VIEWS"))
    for t, n, what, key in labels:
        if t is None:
            raise ValueError(f"SIE ({mode}) needs each image's {what} in the batch")
        if t.device.type == "cpu" and bool(((t < 0) | (t >= n)).any()):
            raise ValueError(f"SIE: {what}s {t.unique().tolist()} are outside the {n} this model was built "
                             f"for ({key}; ids index the table directly, so it must exceed the largest one)")
    if mode == "camera_view":
        return (camids * num_views + views).long()
    return (camids if mode == "camera" else views).long()
