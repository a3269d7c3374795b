"""Record types shared by every dataset adapter: one image (or tracklet), one protocol, one dataset."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from agreid.utils.errors import UserError

AERIAL = "aerial"
GROUND = "ground"
WEARABLE = "wearable"
CCTV = "cctv"
VISIBLE = "visible"
INFRARED = "infrared"

VIEWS = (AERIAL, GROUND, WEARABLE, CCTV)
MODALITIES = (VISIBLE, INFRARED)
BATCH_EXTRAS = "batch_fields"
"""``extras`` key of a dict whose entries are added to the record's loader item (e.g. SVPR caption tokens)."""


def view_index(view: str) -> int:
    """Integer code of a view name (aerial 0, ground 1, wearable 2, cctv 3), used in batches and SIE."""
    return VIEWS.index(view)


def modality_index(modality: str) -> int:
    return MODALITIES.index(modality)


@dataclass(frozen=True)
class ImageRecord:
    """One image of one person.

    ``pid`` is the raw identity in test splits and the relabelled class index (0..N-1) in
    ``ReIDDataset.train``. ``view`` names the platform (aerial / ground / wearable / cctv) and
    ``modality`` the sensor (visible / infrared). ``extras`` holds dataset-specific fields such as
    attributes, a timestamp or the frame paths of a tracklet; only ``extras[BATCH_EXTRAS]`` reaches batches.
    """

    path: str
    pid: int
    camid: int
    view: str = GROUND
    modality: str = VISIBLE
    extras: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def replace(self, **changes: Any) -> "ImageRecord":
        data = dict(path=self.path, pid=self.pid, camid=self.camid, view=self.view,
                    modality=self.modality, extras=self.extras)
        data.update(changes)
        return ImageRecord(**data)


@dataclass(frozen=True)
class TrackletRecord(ImageRecord):
    """One tracklet (video) of one person: ``frames`` are its image paths in temporal order.

    ``path`` names the tracklet (its folder or first frame) so tracklets can be listed and hashed
    like images.
    """

    frames: Tuple[str, ...] = ()

    def replace(self, **changes: Any) -> "TrackletRecord":
        data = dict(path=self.path, pid=self.pid, camid=self.camid, view=self.view,
                    modality=self.modality, extras=self.extras, frames=self.frames)
        data.update(changes)
        return TrackletRecord(**data)


Indices = Optional[Tuple[int, ...]]
"""Positions into a protocol's query or gallery tuple; None means all of them."""


@dataclass(frozen=True)
class Protocol:
    """One evaluation setting: query and gallery sets, and how they are ranked and scored.

    ``rule`` names the gallery-removal rule in ``GALLERY_RULE_REGISTRY``; several rules may be
    combined with ``+`` (an item is kept only if every rule keeps it), e.g. ``"market+cross_view"``.
    ``trials`` lists (query indices, gallery indices) subsets evaluated separately and reported as
    mean and standard deviation (SYSU-MM01 and LLCM single-shot gallery draws); empty means one
    evaluation over everything. ``cmc`` is ``"standard"`` or ``"unique_ids"`` (SYSU-MM01 / LLCM:
    the rank of the first correct identity among de-duplicated gallery identities).
    """

    query: Tuple[ImageRecord, ...]
    gallery: Tuple[ImageRecord, ...]
    rule: str = "market"
    trials: Tuple[Tuple[Indices, Indices], ...] = ()
    cmc: str = "standard"
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


def relabel(records: Sequence[ImageRecord], prefix: str = "") -> Tuple[List[ImageRecord], Dict[Any, int]]:
    """Map raw pids to 0..N-1 in sorted order so every rank builds the same labels (fast-reid #523).

    Records are also sorted by (path, pid, camid) so the list itself is identical on every rank.
    With ``prefix`` the key is ``(prefix, pid)``, letting several datasets share one label space.
    """
    ordered = sorted(records, key=lambda r: (r.path, r.pid, r.camid))
    keys = sorted({(prefix, r.pid) for r in ordered})
    mapping = {k: i for i, k in enumerate(keys)}
    return [r.replace(pid=mapping[(prefix, r.pid)]) for r in ordered], mapping


def records_digest(records: Sequence[ImageRecord]) -> str:
    """A short hash of a record list, compared across ranks to catch non-deterministic loaders."""
    h = hashlib.sha1()
    for r in records:
        h.update(f"{r.path}|{r.pid}|{r.camid}|{r.view}|{r.modality}\n".encode())
    return h.hexdigest()[:16]


class ReIDDataset:
    """A loaded dataset: a relabelled ``train`` list and named evaluation ``protocols``.

    Adapters fill ``train_raw`` (raw pids) and ``protocols``; relabelling happens here once so
    that every adapter relabels the same way.
    """

    attribute_classes: Tuple[Tuple[str, int], ...] = ()
    """(name, number of classes) of the attributes whose labels batches carry as ``attribute_labels`` columns."""

    def __init__(self, name: str, train_raw: Sequence[ImageRecord],
                 protocols: Mapping[str, Protocol], root: str = "") -> None:
        self.name = name
        self.root = root
        self.train, self.pid_map = relabel(train_raw, prefix=name)
        self.protocols: Dict[str, Protocol] = dict(protocols)

    @property
    def num_train_pids(self) -> int:
        return len(self.pid_map)

    @property
    def num_train_cams(self) -> int:
        return len({r.camid for r in self.train})

    def protocol(self, name: str) -> Protocol:
        if name not in self.protocols:
            raise KeyError(f"Dataset {self.name} has no protocol '{name}'. "
                           f"Available: {', '.join(sorted(self.protocols))}")
        return self.protocols[name]

    def summary(self) -> str:
        """A small table of ids / images / cameras per split, logged when the dataset is built."""
        rows = [("train", self.train)]
        for pname, proto in sorted(self.protocols.items()):
            rows += [(f"{pname}/query", proto.query), (f"{pname}/gallery", proto.gallery)]
        lines = [f"{'subset':<24}{'ids':>8}{'images':>10}{'cameras':>9}"]
        for sub, recs in rows:
            lines.append(f"{sub:<24}{len({r.pid for r in recs}):>8}{len(recs):>10}"
                         f"{len({r.camid for r in recs}):>9}")
        return f"Dataset {self.name}:\n" + "\n".join(lines)


class DatasetError(UserError, RuntimeError):
    """A dataset is missing or malformed on disk; the message names the path and the expected layout."""


def require_dir(path: str, dataset: str, layout: str) -> str:
    """Return ``path`` if it is a directory, else raise one clear :class:`DatasetError`."""
    import os

    if not os.path.isdir(path):
        raise DatasetError(f"{dataset}: expected directory '{path}' was not found.\n"
                           f"Expected layout:\n{layout}")
    return path

