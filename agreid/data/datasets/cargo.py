"""CARGO (VDT, CVPR 2024): synthetic aerial-ground re-ID, 13 cameras (Cam1-5 aerial, Cam6-13 ground).

Folders ``train/``, ``query/``, ``gallery/`` each hold ``Cam1`` .. ``Cam13``. Protocols ``ALL``,
``A2G``, ``A2A``, ``G2G`` are those of VDT's ``CARGO``, ``CARGO_AG``, ``CARGO_AA`` and ``CARGO_GG``
classes; ``A2G_secap`` / ``G2A_secap`` are SeCap's ``CARGO_AG`` / ``CARGO_GA``; the ``*_svpr`` ones
are SVPR-ReID's ``CARGO_AG`` / ``_GA`` / ``_AA`` / ``_GG`` / ``_AGAG``.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Dict, List, Sequence, Tuple

from agreid.data.captions import (NOTE_NOT_AVAILABLE, SVPR_CONTEXT_LENGTH, SVPR_NUM_PROMPTS, SVPR_VIEW_IDS,
                                  caption_options, shared_tokenizer, with_svpr_text)
from agreid.data.datasets.parsing import find_data_dir, layout_error, require_path, require_records
from agreid.data.records import AERIAL, GROUND, ImageRecord, Protocol, ReIDDataset
from agreid.registries import DATASET_REGISTRY

NAME = "CARGO"
NUM_CAMERAS = 13
LAST_AERIAL_CAMERA = 5
TIME_FLAGS = {"day": 1, "night": 0}
_NAME = re.compile(r"^Cam(\d+)_(day|night)_(-?\d+)_.+\.jpg$")

LAYOUT = """\
  <root>/CARGO/
    train/Cam1/ .. train/Cam13/        Cam<N>_<day|night>_<pid>_<index>.jpg
    query/Cam1/ .. query/Cam13/        e.g. Cam2_day_2519_320.jpg
    gallery/Cam1/ .. gallery/Cam13/
  Cam1-Cam5 are aerial, Cam6-Cam13 ground; camid = N - 1."""


def parse_cargo_name(path: str) -> ImageRecord:
    """A record from ``Cam<N>_<day|night>_<pid>_<index>.jpg`` (time: day 1, night 0, as SVPR-ReID)."""
    match = _NAME.match(os.path.basename(path))
    if match is None:
        raise layout_error(NAME, f"cannot parse image name '{path}': expected "
                                 f"'Cam<N>_<day|night>_<pid>_<index>.jpg'.", LAYOUT)
    camera, time, pid = int(match.group(1)), match.group(2), int(match.group(3))
    view = AERIAL if camera <= LAST_AERIAL_CAMERA else GROUND
    return ImageRecord(path=path, pid=pid, camid=camera - 1, view=view,
                       extras={"time": TIME_FLAGS[time], "camera": camera})


def read_cargo_split(split_dir: str) -> List[ImageRecord]:
    """Every ``Cam<k>/*.jpg`` for k = 1..13 in ``split_dir`` (other folders are ignored, as in VDT)."""
    require_path(split_dir, NAME, LAYOUT, "directory")
    records = []
    for camera in range(1, NUM_CAMERAS + 1):
        cam_dir = glob.escape(os.path.join(split_dir, f"Cam{camera}"))
        records.extend(parse_cargo_name(p) for p in sorted(glob.glob(os.path.join(cam_dir, "*.jpg"))))
    require_records(records, os.path.join(split_dir, "Cam<1..13>"), NAME, LAYOUT)
    return records


def _only(records: Sequence[ImageRecord], view: str) -> Tuple[ImageRecord, ...]:
    return tuple(r for r in records if r.view == view)


def svpr_protocol(query: Sequence[ImageRecord], gallery: Sequence[ImageRecord], query_view: str,
                  gallery_view: str) -> Protocol:
    """SVPR-ReID's one-view protocol: ``query_view`` images of ``query/`` whose pid the ``gallery_view`` gallery has."""
    g = _only(gallery, gallery_view)
    pids = {r.pid for r in g}
    return Protocol(query=tuple(r for r in _only(query, query_view) if r.pid in pids), gallery=g, rule="market")


def svpr_mixed_protocol(query: Sequence[ImageRecord], gallery: Sequence[ImageRecord]) -> Protocol:
    """SVPR-ReID's ``CARGO_AGAG``: everything, camid collapsed to the view (ground 0, aerial 1), same view removed."""
    def collapse(records: Sequence[ImageRecord]) -> Tuple[ImageRecord, ...]:
        return tuple(r.replace(camid=int(r.view == AERIAL)) for r in records)

    return Protocol(query=collapse(query), gallery=collapse(gallery), rule="market+cross_view",
                    options={"view_mode": "cross_view"})


@DATASET_REGISTRY.register(NAME)
class CARGO(ReIDDataset):
    """CARGO with protocols ``ALL``, ``A2G``, ``A2A``, ``G2G``, ``A2G_secap``, ``G2A_secap``.

    ``ALL`` is the whole query and gallery. ``A2G`` is VDT's A↔G: all queries against the whole
    gallery; VDT replaces camid by the view there, so the market rule removes every same-pid
    same-view match and only cross-view matches count, both directions mixed. agreid ranks it with
    the equivalent ``market_view`` rule and keeps the real camera ids (camera SIE needs them). ``A2A`` /
    ``G2G`` keep one view in query and gallery. Train is the full train split for every protocol:
    VDT also collapses or filters its train set per protocol class, which a shared train list
    cannot do; the raw cameras are kept. Option: ``dataset_dir`` (default ``CARGO``).

    SeCap (wangshining681/SeCap-AGPReID ``fastreid/data/datasets/cargo.py``) has two one-way
    protocols: ``CARGO_AG`` = aerial images of ``query/`` against ground images of ``gallery/``
    (``A2G_secap``) and ``CARGO_GA`` = ground queries against the aerial gallery (``G2A_secap``).
    SeCap collapses camid to the view there; as query and gallery views differ, the market rule
    removes nothing either way, so the raw camera ids are kept (camera SIE stays meaningful).
    SeCap's other CARGO test sets equal existing protocols: ``CARGO`` = ``ALL``, ``CARGO_AA`` =
    ``A2A`` and ``CARGO_GG`` = ``G2G`` (same query/gallery filter, raw camids, market rule; their
    view-filtered train sets are unused when testing).
    ``extras`` hold ``time`` (day 1, night 0) and the raw camera number.

    SVPR-ReID (ahu-xhao/SVPR-ReID ``datasets/cargo.py``): ``A2G_svpr`` / ``G2A_svpr`` / ``A2A_svpr`` /
    ``G2G_svpr`` take one view of ``query/`` against one view of ``gallery/``, keeping only queries whose pid
    that gallery holds (raw camids, market rule); ``AGAG_svpr`` ranks every query against the whole
    gallery with camids collapsed to the view and every gallery item of the query's own view removed
    (``market+cross_view``, SVPR's ``view_mode='cross'``). Option ``captions='svpr'`` gives every image
    SVPR's CARGO caption "A photo of a X X X X  person. Attributes are not available." (train and test),
    no attribute labels (A = 0) and SVPR's view label (ground 0, aerial 1); see :mod:`agreid.data.captions`.
    """

    def __init__(self, root: str, dataset_dir: str = NAME, captions: str = "none",
                 caption_length: int = SVPR_CONTEXT_LENGTH, caption_prompts: int = SVPR_NUM_PROMPTS) -> None:
        text = caption_options(captions, caption_length, caption_prompts, NAME)
        data_dir = find_data_dir(root, [dataset_dir], "train", NAME, LAYOUT)
        splits = {s: read_cargo_split(os.path.join(data_dir, s)) for s in ("train", "query", "gallery")}
        if text is not None:
            tokenizer, caption = shared_tokenizer(text.context_length), text.test_caption(NOTE_NOT_AVAILABLE)
            splits = {s: [with_svpr_text(r, caption, None, 0, SVPR_VIEW_IDS, tokenizer) for r in records]
                      for s, records in splits.items()}
        query, gallery = tuple(splits["query"]), tuple(splits["gallery"])
        protocols: Dict[str, Protocol] = {
            "ALL": Protocol(query=query, gallery=gallery, rule="market"),
            "A2G": Protocol(query=query, gallery=gallery, rule="market_view"),
            "A2A": Protocol(query=_only(query, AERIAL), gallery=_only(gallery, AERIAL), rule="market"),
            "G2G": Protocol(query=_only(query, GROUND), gallery=_only(gallery, GROUND), rule="market"),
            "A2G_secap": Protocol(query=_only(query, AERIAL), gallery=_only(gallery, GROUND), rule="market"),
            "G2A_secap": Protocol(query=_only(query, GROUND), gallery=_only(gallery, AERIAL), rule="market"),
            "A2G_svpr": svpr_protocol(query, gallery, AERIAL, GROUND),
            "G2A_svpr": svpr_protocol(query, gallery, GROUND, AERIAL),
            "A2A_svpr": svpr_protocol(query, gallery, AERIAL, AERIAL),
            "G2G_svpr": svpr_protocol(query, gallery, GROUND, GROUND),
            "AGAG_svpr": svpr_mixed_protocol(query, gallery),
        }
        super().__init__(NAME, splits["train"], protocols, root=data_dir)
