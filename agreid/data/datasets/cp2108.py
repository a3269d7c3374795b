"""CP2108 (SVPR-ReID, AAAI 2026): campus aerial-ground re-ID with day/night captures and 22 attributes.

Train, query and gallery are path lists under ``split_v<V>/``; the seven evaluation protocols are
view-filtered selections of the query and gallery lists, exactly as SVPR-ReID's dataset classes.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from agreid.data.captions import (SVPR_CONTEXT_LENGTH, SVPR_NUM_PROMPTS, SVPR_VIEW_IDS, CaptionOptions,
                                  attribute_sentence, caption_options, shared_tokenizer, with_svpr_text)
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
    attributes_labeled_qwen.json   {"<pid>_<viewid>_<timeid>": {"<attribute>": "<value>", ...}, ...}
    attr_translation_idx.json      {"<attribute>": {"<value>": <class index 0..n-1>, ...}, ...}
  The two JSON files are optional, but required with captions='svpr'; viewid 0 ground / 1 aerial.
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


def _require_json(path: str, what: str) -> Any:
    if not os.path.isfile(path):
        raise layout_error(NAME, f"captions='svpr' needs the {what} '{path}', which was not found.", LAYOUT)
    return _load_json(path)


def read_attribute_index(index_path: str) -> Tuple[Dict[str, Dict[str, int]], Tuple[Tuple[str, int], ...]]:
    """(value → class index per attribute, (name, class count) of the used attributes in SVPR's order).

    As SVPR-ReID, the used attributes are those of :data:`USED_ATTRIBUTES` the file lists, sorted by
    name, and an attribute's class count is its number of values, so a released index file sets them.
    """
    index = _load_json(index_path)
    if not isinstance(index, dict) or not all(isinstance(v, dict) for v in index.values()):
        raise layout_error(NAME, f"'{index_path}' must be a JSON object mapping each attribute to an object "
                                 f"{{value: class index}}.", LAYOUT)
    classes = tuple((name, len(index[name])) for name in sorted(a for a in index if a in USED_ATTRIBUTES))
    if not classes:
        raise layout_error(NAME, f"'{index_path}' lists none of the attributes SVPR-ReID uses "
                                 f"({', '.join(USED_ATTRIBUTES)}).", LAYOUT)
    for name, count in classes:
        labels = list(index[name].values())
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < count for i in labels):
            raise layout_error(NAME, f"'{index_path}': the class indices of {name!r} must be integers in "
                                     f"0..{count - 1}, got {labels}.", LAYOUT)
    return index, classes


def read_attributes(data_dir: str, required: bool = False
                    ) -> Tuple[Dict[int, Dict[str, Any]], Tuple[Tuple[str, int], ...]]:
    """(pid → extras with ``attributes`` and, given the index file, ``attribute_labels``; attribute classes).

    Like SVPR-ReID, every image of a pid takes the entry of (ground view, time 1); a missing view
    falls back to the other view and a missing time to the other time. The labels are the class
    indices of the used attributes (:func:`read_attribute_index`), 'unknown' where an entry lacks one.
    Without ``required`` a missing attribute file means no attributes.
    """
    attr_path = os.path.join(data_dir, ATTRIBUTE_FILE)
    index_path = os.path.join(data_dir, ATTRIBUTE_INDEX_FILE)
    if required:
        _require_json(attr_path, "attribute file")
        _require_json(index_path, "attribute index file")
    elif not os.path.isfile(attr_path):
        return {}, ()
    annotations = _load_json(attr_path)
    if not isinstance(annotations, dict) or not all(isinstance(v, dict) for v in annotations.values()):
        raise layout_error(NAME, f"'{attr_path}' must be a JSON object mapping '<pid>_<viewid>_<timeid>' to an "
                                 f"object {{attribute: value}}.", LAYOUT)
    table: Dict[int, Dict[int, Dict[int, Mapping[str, Any]]]] = {}
    for key, values in annotations.items():
        try:
            pid, view_id, time_id = (int(p) for p in str(key).split("_")[:3])
        except ValueError:
            raise layout_error(NAME, f"'{attr_path}': key '{key}' is not '<pid>_<viewid>_<timeid>'.",
                               LAYOUT) from None
        table.setdefault(pid, {}).setdefault(view_id, {})[time_id] = values
    index, classes = read_attribute_index(index_path) if os.path.isfile(index_path) else (None, ())
    out: Dict[int, Dict[str, Any]] = {}
    for pid, views in table.items():
        by_time = views.get(_GROUND_VIEW_ID) or views[min(views)]
        entry = dict(by_time.get(1, by_time.get(0, by_time[min(by_time)])))
        extras: Dict[str, Any] = {"attributes": entry}
        if index is not None:
            labels = []
            for attr, _ in classes:
                value = entry.get(attr, "unknown")
                if value not in index[attr]:
                    raise layout_error(NAME, f"'{index_path}' has no index for {attr} = {value!r} "
                                             f"(pid {pid} in '{attr_path}').", LAYOUT)
                labels.append(int(index[attr][value]))
            extras["attribute_labels"] = tuple(labels)
        out[pid] = extras
    return out, classes


def with_svpr_captions(records: Sequence[ImageRecord], attributes: Mapping[int, Dict[str, Any]],
                       classes: Sequence[Tuple[str, int]], options: CaptionOptions, train: bool,
                       source: str) -> List[ImageRecord]:
    """``records`` with SVPR-ReID's captions, attribute labels and view labels (``agreid.data.captions``).

    Training images take "... with the following attributes: Accessories is v, ..." from their identity's
    entry; test images the fixed "A photo of a X X X X  person." and, as in SVPR, their identity's labels
    when annotated (-1 otherwise). A training identity without an annotation is an error (SVPR fails too);
    an attribute missing from an entry reads 'unknown' in the caption, as in the labels (SVPR's caption fails).
    """
    if train:
        missing = sorted({r.pid for r in records if r.pid not in attributes})
        if missing:
            shown = ", ".join(str(p) for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise layout_error(NAME, f"{len(missing)} training identities of '{source}' have no entry in "
                                     f"'{ATTRIBUTE_FILE}' (captions='svpr' needs one): {shown}.", LAYOUT)
    tokenizer = shared_tokenizer(options.context_length)
    test_caption = options.test_caption()
    out = []
    for r in records:
        extras = attributes.get(r.pid, {})
        caption = options.train_caption(attribute_sentence(
            (name, extras["attributes"].get(name, "unknown")) for name, _ in classes)) if train else test_caption
        out.append(with_svpr_text(r, caption, extras.get("attribute_labels"), len(classes), SVPR_VIEW_IDS,
                                  tokenizer))
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

    ``attribute_classes`` lists the used attributes and their class counts, read from
    ``attr_translation_idx.json``. Option ``captions='svpr'`` (needs both attribute files) adds SVPR-ReID's
    captions, attribute labels and view labels to every record (see :mod:`agreid.data.captions`),
    tokenised to ``caption_length`` (default 100) with ``caption_prompts`` (default 4) "X" slots (learnable-prompt positions).
    """

    def __init__(self, root: str, dataset_dir: str = NAME, version: Union[int, str] = 100,
                 time_mode: str = "mix", check_files: Union[bool, str] = True, captions: str = "none",
                 caption_length: int = SVPR_CONTEXT_LENGTH, caption_prompts: int = SVPR_NUM_PROMPTS) -> None:
        text = caption_options(captions, caption_length, caption_prompts, NAME)
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
        attributes, self.attribute_classes = read_attributes(data_dir, required=text is not None)
        splits = {}
        for split in ("train", "query", "gallery"):
            list_path = os.path.join(split_dir, f"{split}_v{version}.txt")
            records = _with_attributes(_read_split(list_path, image_dir, verify), attributes)
            if split == "train":
                records = [r for r in records if r.pid != -1]
                require_records(records, list_path, NAME, LAYOUT, "images with a pid other than -1")
            if text is not None:
                records = with_svpr_captions(records, attributes, self.attribute_classes, text,
                                             split == "train", list_path)
            splits[split] = records
        train = splits["train"]
        protocols = {name: build_cp2108_protocol(name, splits["query"], splits["gallery"], time_mode)
                     for name in PROTOCOLS}
        super().__init__(NAME, train, protocols, root=data_dir)
