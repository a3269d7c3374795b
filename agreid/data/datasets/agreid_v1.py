"""AG-ReID (v1, ICME 2023): UAV camera C0 against CCTV camera C3, with identity-level attributes.

Also home of the AG-ReID file-name grammar and attribute ``.mat`` reader that AG-ReID.v2 shares.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from agreid.data.captions import (NOTE_UNKNOWN, SVPR_CONTEXT_LENGTH, SVPR_NUM_PROMPTS, SVPR_VIEW_IDS, CaptionOptions,
                                  attribute_sentence, caption_options, shared_tokenizer, with_svpr_text)
from agreid.data.records import AERIAL, GROUND, DatasetError, ImageRecord, Protocol, ReIDDataset, require_dir
from agreid.registries import DATASET_REGISTRY

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
NAME_PATTERN = re.compile(r"P(\d+)T(\d+)A(\d+)C(\d+)F(\d+)")
NAME_GRAMMAR = "P<person>T<MMDD><0=am|1=pm>A<altitude>C<camera>F<frame>.jpg, e.g. P0006T02140A0C0F1831.jpg"
ATTRIBUTE_VARIABLE = "qut_attribute"
ATTRIBUTE_VALUES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("gender", ("male", "female", "unknown")),
    ("age", ("young", "middle", "old", "unknown")),
    ("height", ("child", "short", "medium", "tall", "unknown")),
    ("weight", ("thin", "medium", "fat", "unknown")),
    ("ethnic", ("white", "black", "asian", "india", "unknown")),
    ("haircolor", ("black", "brown", "white", "red", "gray", "occluded", "unknown")),
    ("hairstyle", ("bald", "short", "medium", "long", "horsetail", "unknown")),
    ("beard", ("on", "off", "unknown")),
    ("moustache", ("on", "off", "unknown")),
    ("glasses", ("normal", "sun", "off", "unknown")),
    ("head", ("hat", "scarf", "neckless", "occluded", "unknown")),
    ("upper", ("tshirt", "blouse", "sweater", "coat", "bikini", "naked", "dress", "uniform", "shirt", "suit",
               "hoodie", "cardiga", "unknown")),
    ("lower", ("jeans", "leggins", "pants", "shorts", "skirt", "bikini", "dress", "uniform", "suit", "unknown")),
    ("feet", ("sportshoe", "classicshoe", "highheels", "boots", "sandals", "nothing", "unknown")),
    ("bag", ("normal", "backpack", "hand", "rolling", "umbrella", "sportif", "market", "nothing", "unknown")))
"""The words of each attribute group's values, in column order, as SVPR-ReID's captions spell them
(``ATTR_MAP`` in its ``datasets/agreid.py``, typos such as "cardiga" included: they change the tokens)."""
ATTRIBUTE_GROUPS: Tuple[Tuple[str, int], ...] = tuple((name, len(values)) for name, values in ATTRIBUTE_VALUES)
"""The 15 one-hot attribute groups, in column order, that make up the 88 attribute columns."""

V1_VIEWS = {0: AERIAL, 3: GROUND}
V1_PROTOCOLS = {"A2G": ("query_all_c0", "bounding_box_test_all_c3"),
                "G2A": ("query_all_c3", "bounding_box_test_all_c0")}
V1_ATTRIBUTE_FILE = "qut_attribute_v4_88_attributes.mat"

V1_LAYOUT = f"""\
  <root>/<dataset_dir, default AG-ReID>/
    bounding_box_train/          training images (flat)
    bounding_box_test_all_c0/    aerial gallery (G2A)
    bounding_box_test_all_c3/    ground gallery (A2G)
    query_all_c0/                aerial queries (A2G)
    query_all_c3/                ground queries (G2A)
    {V1_ATTRIBUTE_FILE}   struct '{ATTRIBUTE_VARIABLE}' with tables 'train' and 'test'
  Images are named {NAME_GRAMMAR}.
  The identity is P+T+A read as one integer; camera 0 is the UAV (aerial), camera 3 CCTV (ground)."""


def layout_error(dataset: str, message: str, layout: str) -> DatasetError:
    """One :class:`DatasetError` reading ``<dataset>: <message>`` followed by the expected layout."""
    return DatasetError(f"{dataset}: {message}\nExpected layout:\n{layout}")


def scan_images(folder: str, recursive: bool, dataset: str, layout: str) -> List[str]:
    """Sorted image paths in ``folder`` (and its sub-folders if ``recursive``); the folder must exist."""
    require_dir(folder, dataset, layout)
    paths: List[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        paths.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not recursive:
            break
    if not paths:
        raise layout_error(dataset, f"no images found in '{folder}'.", layout)
    return paths


def parse_agreid_name(path: str, views: Mapping[int, str], dataset: str, layout: str) -> ImageRecord:
    """Record of one AG-ReID image: pid = int(P+T+A), camid = the C number, view from ``views``.

    ``extras`` holds ``altitude`` (the A digit) and ``time_of_day`` ("am"/"pm", the last T digit).
    """
    match = NAME_PATTERN.search(os.path.basename(path))
    if match is None:
        raise layout_error(dataset, f"cannot parse image name '{path}'; expected {NAME_GRAMMAR}.", layout)
    person, stamp, altitude, camera, _ = match.groups()
    camid = int(camera)
    if camid not in views:
        raise layout_error(dataset, f"image '{path}' has camera C{camid}; this dataset has cameras "
                                    f"{', '.join(f'C{c}' for c in sorted(views))}.", layout)
    extras = {"altitude": int(altitude)}
    if stamp[-1] in "01":
        extras["time_of_day"] = "am" if stamp[-1] == "0" else "pm"
    return ImageRecord(path=path, pid=int(person + stamp + altitude), camid=camid, view=views[camid],
                       extras=extras)


def _column(struct, name: str) -> np.ndarray:
    return np.atleast_1d(np.asarray(getattr(struct, name))).reshape(-1)


def load_attribute_table(mat_path: str, dataset: str,
                         layout: str) -> Tuple[Tuple[str, ...], Dict[int, np.ndarray]]:
    """Read ``qut_attribute.{train,test}`` into (column names, {composite pid: float32 vector of ±1}).

    Stored values 1/2 become -1/+1 (2v - 3) as in the reference loaders; ``image_index`` is the pid.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    if not os.path.isfile(mat_path):
        raise layout_error(dataset, f"attribute file '{mat_path}' was not found (pass with_attributes=False "
                                    f"to load the images without attributes).", layout)
    try:
        mat = loadmat(mat_path, squeeze_me=True, struct_as_record=False)
    except (OSError, ValueError, TypeError, NotImplementedError, MatReadError) as exc:
        raise DatasetError(f"{dataset}: cannot read attribute file '{mat_path}' "
                           f"({type(exc).__name__}: {exc})") from None
    tables = mat.get(ATTRIBUTE_VARIABLE)
    names: Optional[Tuple[str, ...]] = None
    table: Dict[int, np.ndarray] = {}
    for part in ("train", "test"):
        split = getattr(tables, part, None)
        fields = tuple(getattr(split, "_fieldnames", ()))
        if "image_index" not in fields:
            raise DatasetError(f"{dataset}: '{mat_path}' has no table '{ATTRIBUTE_VARIABLE}.{part}' with an "
                               f"'image_index' column.\nExpected layout:\n{layout}")
        columns = tuple(f for f in fields if f != "image_index")
        if names is not None and columns != names:
            raise DatasetError(f"{dataset}: '{mat_path}': tables 'train' and 'test' have different columns.")
        names = columns
        index = _column(split, "image_index").astype(np.int64)
        values = np.stack([_column(split, c).astype(np.int64) for c in columns], axis=1) * 2 - 3
        if values.shape[0] != index.shape[0]:
            raise DatasetError(f"{dataset}: '{mat_path}': table '{part}' has columns of different lengths.")
        for pid, row in zip(index.tolist(), values.astype(np.float32)):
            row.setflags(write=False)
            table.setdefault(pid, row)
    return names or (), table


def attach_attributes(records: Sequence[ImageRecord], table: Mapping[int, np.ndarray], source: str,
                      dataset: str) -> List[ImageRecord]:
    """Copies of ``records`` with ``extras["attributes"]``; raises if a pid has no attribute row."""
    missing = sorted({r.pid for r in records if r.pid not in table})
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DatasetError(f"{dataset}: {len(missing)} identities have no row in the attribute file "
                           f"'{source}': {shown} (pass with_attributes=False to skip attributes).")
    return [r.replace(extras={**r.extras, "attributes": table[r.pid]}) for r in records]


def group_labels(vector: np.ndarray) -> Tuple[int, ...]:
    """Class of each attribute group of an 88-value ±1 row: its first +1 position, else the last class ("unknown").

    SVPR-ReID does the same (``parse_attributes``), except that a group with several +1 values makes it
    fail; the first one is taken here.
    """
    labels, start = [], 0
    for _, count in ATTRIBUTE_GROUPS:
        hits = np.flatnonzero(np.asarray(vector[start:start + count]) == 1)
        labels.append(int(hits[0]) if hits.size else count - 1)
        start += count
    return tuple(labels)


def with_svpr_captions(records: Sequence[ImageRecord], train: bool, options: CaptionOptions,
                       view_ids: Mapping[str, int], dataset: str) -> List[ImageRecord]:
    """SVPR-ReID's AG-ReID texts (``datasets/agreid.py``, ``agreidv2.py``), see :mod:`agreid.data.captions`.

    Training images: "... with the following attributes: gender is male, age is young, ..." from the
    identity's attribute row, and its 15 group labels. Test images: "A photo of a X X X X  person.
    Attributes are unknown." and no labels (-1): SVPR passes attribute labels for training images only.
    """
    tokenizer = shared_tokenizer(options.context_length)
    width = len(ATTRIBUTE_GROUPS)
    if not train:
        caption = options.test_caption(NOTE_UNKNOWN)
        return [with_svpr_text(r, caption, None, width, view_ids, tokenizer) for r in records]
    texts: Dict[int, Tuple[str, Tuple[int, ...]]] = {}
    out = []
    for r in records:
        if r.pid not in texts:
            vector = np.asarray(r.extras["attributes"]).reshape(-1)
            if vector.shape[0] != sum(n for _, n in ATTRIBUTE_GROUPS):
                raise DatasetError(f"{dataset}: captions='svpr' needs {sum(n for _, n in ATTRIBUTE_GROUPS)} "
                                   f"attribute columns (15 one-hot groups), the attribute file has {vector.shape[0]}.")
            labels = group_labels(vector)
            words = ((name, values[label]) for (name, values), label in zip(ATTRIBUTE_VALUES, labels))
            texts[r.pid] = (options.train_caption(attribute_sentence(words)), labels)
        caption, labels = texts[r.pid]
        out.append(with_svpr_text(r, caption, labels, width, view_ids, tokenizer))
    return out


def check_caption_attributes(text: Optional[CaptionOptions], with_attributes: bool, dataset: str) -> None:
    """SVPR writes AG-ReID training captions from the attribute file, so captions need ``with_attributes``."""
    if text is not None and not with_attributes:
        raise ValueError(f"{dataset}: captions='svpr' writes the training captions from the attribute file; "
                         f"it needs with_attributes=True.")


@DATASET_REGISTRY.register("AGReID")
class AGReID(ReIDDataset):
    """AG-ReID v1: train on ``bounding_box_train``; protocols A2G and G2A, both with the market rule, and
    SVPR-ReID's whole-set ``ALL_svpr`` (every query against both galleries).

    Identity = int(P+T+A), so one person at another altitude or time slot is another identity (the
    attribute rows are keyed the same way). The market rule removes nothing here because query and
    gallery cameras differ. There are no junk identities. ``with_attributes`` attaches the 88-value
    ±1 vector (groups in :data:`ATTRIBUTE_GROUPS`) as ``extras["attributes"]``; camera 3, the CCTV
    camera of this aerial-ground benchmark, gets the view ``ground``. Option ``captions='svpr'`` adds
    SVPR-ReID's captions, 15 attribute labels (``attribute_classes`` = :data:`ATTRIBUTE_GROUPS`) and view
    labels (ground 0, aerial 1), see :func:`with_svpr_captions`.
    """

    def __init__(self, root: str, dataset_dir: str = "AG-ReID", with_attributes: bool = True,
                 captions: str = "none", caption_length: int = SVPR_CONTEXT_LENGTH,
                 caption_prompts: int = SVPR_NUM_PROMPTS) -> None:
        name = "AGReID"
        text = caption_options(captions, caption_length, caption_prompts, name)
        check_caption_attributes(text, with_attributes, name)
        data_dir = require_dir(os.path.join(root, dataset_dir), name, V1_LAYOUT)

        def read(folder: str) -> List[ImageRecord]:
            paths = scan_images(os.path.join(data_dir, folder), False, name, V1_LAYOUT)
            return [parse_agreid_name(p, V1_VIEWS, name, V1_LAYOUT) for p in paths]

        train = read("bounding_box_train")
        splits = {folder: read(folder) for pair in V1_PROTOCOLS.values() for folder in pair}
        self.attribute_names: Tuple[str, ...] = ()
        if with_attributes:
            mat_path = os.path.join(data_dir, V1_ATTRIBUTE_FILE)
            self.attribute_names, table = load_attribute_table(mat_path, name, V1_LAYOUT)
            train = attach_attributes(train, table, mat_path, name)
            splits = {k: attach_attributes(v, table, mat_path, name) for k, v in splits.items()}
        if text is not None:
            self.attribute_classes = ATTRIBUTE_GROUPS
            train = with_svpr_captions(train, True, text, SVPR_VIEW_IDS, name)
            splits = {k: with_svpr_captions(v, False, text, SVPR_VIEW_IDS, name) for k, v in splits.items()}
        protocols = {p: Protocol(query=tuple(splits[q]), gallery=tuple(splits[g]), rule="market")
                     for p, (q, g) in V1_PROTOCOLS.items()}
        # SVPR-ReID's whole-set test ("AGReID", mode 'mix'): every query against both galleries; one camera per
        # view, so the market rule removes the same identity seen from the query's own view
        protocols["ALL_svpr"] = Protocol(query=tuple(r for q, _ in V1_PROTOCOLS.values() for r in splits[q]),
                                         gallery=tuple(r for _, g in V1_PROTOCOLS.values() for r in splits[g]),
                                         rule="market")
        super().__init__(name, train, protocols, root=data_dir)
