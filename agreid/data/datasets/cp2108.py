"""CP2108 (SVPR-ReID, AAAI 2026): campus aerial-ground re-ID with day/night captures and 22 attributes.

Train, query and gallery are path lists under ``split_v<V>/``; the seven evaluation protocols are
view-filtered selections of the query and gallery lists, exactly as SVPR-ReID's dataset classes.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from agreid.data.datasets.parsing import (check_files, find_data_dir, layout_error, parse_bool,
                                          read_path_list, require_path, require_records)
from agreid.data.records import AERIAL, GROUND, ImageRecord, Protocol, ReIDDataset
from agreid.registries import DATASET_REGISTRY

NAME = "CP2108"
FIRST_AERIAL_CAMERA = 23
TIME_RULES = {"mix": "", "cross": "cross_time", "same": "same_time"}
ATTRIBUTE_FILE = "attributes_labeled_qwen.json"
ATTRIBUTE_INDEX_FILE = "attr_translation_idx.json"
USED_ATTRIBUTES = ("Accessories", "Feet", "Glasses", "Head Accessories", "Holding Phone", "Lower Clothing",
                   "Lower Color", "Lower Style", "Pose", "Upper Clothing", "Upper Color", "Upper Style")
_GROUND_VIEW_ID, _AERIAL_VIEW_ID = 0, 1

PROTOCOLS: Dict[str, Tuple[Optional[str], Optional[str], bool, str]] = {
    "ALL": (None, None, True, ""),
    "AG": (AERIAL, GROUND, True, ""),
    "GA": (GROUND, AERIAL, True, ""),
    "AA": (AERIAL, AERIAL, True, ""),
    "GG": (GROUND, GROUND, True, ""),
    "AGAG": (None, None, False, "cross_view"),
    "AAGG": (None, None, True, "same_view"),
}
"""name → (query view, gallery view (None: both), keep only queries with a gallery pid, view rule)."""

LAYOUT = """\
  <root>/CP2108/
    split_v<V>/train_v<V>.txt  query_v<V>.txt  gallery_v<V>.txt   one image path per line
    images_v<V>/...            the listed images when V >= 100 (option version, default 100)
    images/...                 the listed images when V < 100
    attributes_labeled_qwen.json   optional: {"<pid>_<viewid>_<timeid>": {attribute: value}}
    attr_translation_idx.json      optional: {attribute: {value: class index}}
  Image names are '<pid>_<camera>_<timeid>_<sceneid>_<anything>.jpg'; camera < 23 is ground,
  >= 23 aerial; timeid is the 0/1 day-night flag."""


def parse_cp2108_name(path: str, where: str) -> ImageRecord:
    """A record from ``<pid>_<camera>_<time>_<scene>_...``: camid = camera - 1, camera >= 23 aerial."""
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        pid, camera, time_id, scene = (int(p) for p in stem.split("_")[:4])
    except ValueError:
        raise layout_error(NAME, f"cannot parse {where}: '{os.path.basename(path)}' does not follow "
                                 f"'<pid>_<camera>_<timeid>_<sceneid>_...'.", LAYOUT) from None
    view = AERIAL if camera >= FIRST_AERIAL_CAMERA else GROUND
    return ImageRecord(path=path, pid=pid, camid=camera - 1, view=view,
                       extras={"time": time_id, "scene": scene, "camera": camera})


def _read_split(list_path: str, image_dir: str, verify: bool) -> List[ImageRecord]:
    records = [parse_cp2108_name(os.path.join(image_dir, *rel.split("/")), f"line {n} of '{list_path}'")
               for n, rel in read_path_list(list_path, NAME, LAYOUT)]
    require_records(records, list_path, NAME, LAYOUT)
    if verify:
        check_files(records, list_path, NAME)
    return records


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except ValueError as err:
        raise layout_error(NAME, f"'{path}' is not valid JSON ({err}).", LAYOUT) from None


def read_attributes(data_dir: str) -> Dict[int, Dict[str, Any]]:
    """pid → extras with the identity's ``attributes`` (and ``attribute_labels`` if the index map exists).

    Like SVPR-ReID, every image of a pid takes the entry of (ground view, time 1); a missing view
    falls back to the other view and a missing time to the other time. The labels are the class
    indices of the 12 attributes SVPR-ReID trains on, in alphabetical order ('unknown' if absent).
    """
    attr_path = os.path.join(data_dir, ATTRIBUTE_FILE)
    if not os.path.isfile(attr_path):
        return {}
    table: Dict[int, Dict[int, Dict[int, Mapping[str, Any]]]] = {}
    for key, values in _load_json(attr_path).items():
        try:
            pid, view_id, time_id = (int(p) for p in str(key).split("_")[:3])
        except ValueError:
            raise layout_error(NAME, f"'{attr_path}': key '{key}' is not '<pid>_<viewid>_<timeid>'.",
                               LAYOUT) from None
        table.setdefault(pid, {}).setdefault(view_id, {})[time_id] = values
    index_path = os.path.join(data_dir, ATTRIBUTE_INDEX_FILE)
    index = _load_json(index_path) if os.path.isfile(index_path) else None
    out: Dict[int, Dict[str, Any]] = {}
    for pid, views in table.items():
        by_time = views.get(_GROUND_VIEW_ID) or views[min(views)]
        entry = dict(by_time.get(1, by_time.get(0, by_time[min(by_time)])))
        extras: Dict[str, Any] = {"attributes": entry}
        if index is not None:
            labels = []
            for attr in sorted(a for a in index if a in USED_ATTRIBUTES):
                value = entry.get(attr, "unknown")
                if value not in index[attr]:
                    raise layout_error(NAME, f"'{index_path}' has no index for {attr} = {value!r} "
                                             f"(pid {pid} in '{attr_path}').", LAYOUT)
                labels.append(int(index[attr][value]))
            extras["attribute_labels"] = tuple(labels)
        out[pid] = extras
    return out


def _with_attributes(records: Sequence[ImageRecord],
                     attributes: Mapping[int, Dict[str, Any]]) -> List[ImageRecord]:
    return [r.replace(extras={**r.extras, **attributes[r.pid]}) if r.pid in attributes else r
            for r in records]


def build_cp2108_protocol(name: str, query: Sequence[ImageRecord], gallery: Sequence[ImageRecord],
                          time_mode: str) -> Protocol:
    """One SVPR-ReID protocol: view-filtered query/gallery, market rule plus view and time filters."""
    query_view, gallery_view, restrict, view_rule = PROTOCOLS[name]
    g = [r for r in gallery if gallery_view is None or r.view == gallery_view]
    q = [r for r in query if query_view is None or r.view == query_view]
    if restrict:
        gallery_pids = {r.pid for r in g}
        q = [r for r in q if r.pid in gallery_pids]
    if name == "AGAG":
        q = [r.replace(camid=int(r.view == AERIAL)) for r in q]
        g = [r.replace(camid=int(r.view == AERIAL)) for r in g]
    rule = "+".join(p for p in ("market", view_rule, TIME_RULES[time_mode]) if p)
    return Protocol(query=tuple(q), gallery=tuple(g), rule=rule,
                    options={"time_mode": time_mode, "view_mode": view_rule or "mix"})


@DATASET_REGISTRY.register(NAME)
class CP2108(ReIDDataset):
    """CP2108 with protocols ALL, AG, GA, AA, GG, AGAG and AAGG (SVPR-ReID ``CP2108_*`` classes).

    Every protocol ranks with the market rule; queries are restricted to pids present in the
    (view-filtered) gallery except in AGAG, whose cameras are collapsed to the view (ground 0,
    aerial 1) and which adds ``cross_view``; AAGG adds ``same_view``. Option ``time_mode`` = mix
    (default) / cross / same adds the ``cross_time`` / ``same_time`` rule to every protocol, on
    ``extras["time"]``. Other options: ``dataset_dir`` (default ``CP2108``), ``version`` (split
    version, default 100) and ``check_files`` (verify listed images exist, default true).
    Assumptions: the pid -1 junk is dropped from train (SVPR-ReID cannot relabel it) and kept raw
    in query and gallery; the name's fourth field is read without its extension so a name with
    only four fields also parses; the early CP2000 hard-query filter is not applied (the CP2108
    code dropped it); which time flag means day is unpublished, so ``extras["time"]`` stays 0/1.
    """

    def __init__(self, root: str, dataset_dir: str = NAME, version: Union[int, str] = 100,
                 time_mode: str = "mix", check_files: Union[bool, str] = True) -> None:
        time_mode = str(time_mode).strip().lower()
        if time_mode not in TIME_RULES:
            raise ValueError(f"{NAME}: time_mode must be one of {', '.join(TIME_RULES)}, got {time_mode!r}")
        try:
            version = int(version)
        except ValueError:
            raise ValueError(f"{NAME}: version must be an integer, got {version!r}") from None
        data_dir = find_data_dir(root, [dataset_dir], f"split_v{version}", NAME, LAYOUT)
        split_dir = require_path(os.path.join(data_dir, f"split_v{version}"), NAME, LAYOUT, "directory")
        image_dir = require_path(os.path.join(data_dir, f"images_v{version}" if version >= 100 else "images"),
                                 NAME, LAYOUT, "directory")
        verify = parse_bool(check_files, "check_files")
        attributes = read_attributes(data_dir)
        splits = {}
        for split in ("train", "query", "gallery"):
            records = _read_split(os.path.join(split_dir, f"{split}_v{version}.txt"), image_dir, verify)
            splits[split] = _with_attributes(records, attributes)
        train = [r for r in splits["train"] if r.pid != -1]
        require_records(train, os.path.join(split_dir, f"train_v{version}.txt"), NAME, LAYOUT,
                        "images with a pid other than -1")
        protocols = {name: build_cp2108_protocol(name, splits["query"], splits["gallery"], time_mode)
                     for name in PROTOCOLS}
        super().__init__(NAME, train, protocols, root=data_dir)
