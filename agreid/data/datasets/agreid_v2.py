"""AG-ReID.v2 (TIFS 2024): UAV (C0), wearable (C2) and CCTV (C3) cameras, four cross-platform protocols."""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

from agreid.data.captions import SVPR_CONTEXT_LENGTH, SVPR_NUM_PROMPTS, SVPR_V2_VIEW_IDS, caption_options
from agreid.data.datasets.agreid_v1 import (ATTRIBUTE_GROUPS, NAME_GRAMMAR, attach_attributes,
                                            check_caption_attributes, layout_error, load_attribute_table,
                                            parse_agreid_name, scan_images, with_svpr_captions)
from agreid.data.records import AERIAL, CCTV, WEARABLE, ImageRecord, Protocol, ReIDDataset, require_dir
from agreid.registries import DATASET_REGISTRY

V2_VIEWS = {0: AERIAL, 2: WEARABLE, 3: CCTV}
V2_PROTOCOLS: Dict[str, Tuple[str, int, int]] = {
    "A2C": ("exp1_aerial_to_cctv.txt", 0, 3),
    "A2W": ("exp2_aerial_to_wearable.txt", 0, 2),
    "C2A": ("exp4_cctv_to_aerial.txt", 3, 0),
    "W2A": ("exp5_wearable_to_aerial.txt", 2, 0),
}
"""Protocol name → (list file, query camera, gallery camera)."""
V2_ATTRIBUTE_FILE = "qut_attribute_v8.mat"
INNER_DIR = "AG-ReID.v2"
PROTOCOL_SOURCES = ("files", "cameras")

V2_LAYOUT = f"""\
  <root>/<dataset_dir, default AG-ReID.v2>/
    exp1_aerial_to_cctv.txt       A2C   one path per line, relative to the image folder, e.g.
    exp2_aerial_to_wearable.txt   A2W     query/P0313T02220A0/P0313T02220A0C0F11011.jpg   (query item)
    exp4_cctv_to_aerial.txt       C2A     gallery/P1048T04071A1/P1048T04071A1C3F06811.jpg (gallery item)
    exp5_wearable_to_aerial.txt   W2A
    {V2_ATTRIBUTE_FILE}          struct 'qut_attribute' with tables 'train' and 'test'
    {INNER_DIR}/                   the image folder (or put the three folders below directly here)
      train_all/<P…T…A…>/*.jpg
      query/<P…T…A…>/*.jpg
      gallery/<P…T…A…>/*.jpg
  Images are named {NAME_GRAMMAR}; camera 0 = UAV (aerial), 2 = wearable, 3 = CCTV.
  With protocol_source='cameras' the .txt files are not needed."""


def _read_protocol_file(list_path: str, image_dir: str, name: str) -> Tuple[List[ImageRecord], List[ImageRecord]]:
    """Query and gallery records of one ``exp*.txt`` list; the first path component says which."""
    if not os.path.isfile(list_path):
        raise layout_error(name, f"protocol file '{list_path}' was not found (or pass protocol_source="
                                 f"'cameras' to build the protocols from the cameras).", V2_LAYOUT)
    splits: Dict[str, List[ImageRecord]] = {"query": [], "gallery": []}
    with open(list_path, encoding="utf-8-sig") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip().replace("\\", "/")
            line = line[2:] if line.startswith("./") else line
            if not line:
                continue
            split = line.split("/", 1)[0]
            if split not in splits:
                raise layout_error(name, f"{list_path}, line {number}: expected a path starting with 'query/' "
                                         f"or 'gallery/', got {line!r}.", V2_LAYOUT)
            splits[split].append(parse_agreid_name(os.path.join(image_dir, *line.split("/")), V2_VIEWS, name,
                                                   V2_LAYOUT))
    for split, records in splits.items():
        if not records:
            raise layout_error(name, f"'{list_path}' lists no {split} images.", V2_LAYOUT)
        missing = sorted(r.path for r in records if not os.path.isfile(r.path))
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise layout_error(name, f"'{list_path}' lists {len(missing)} {split} image(s) that do not exist, "
                                     f"e.g. {', '.join(missing[:3])}{more}.", V2_LAYOUT)
    return splits["query"], splits["gallery"]


def _camera_protocol(query: List[ImageRecord], gallery: List[ImageRecord], q_cam: int,
                     g_cam: int) -> Tuple[List[ImageRecord], List[ImageRecord]]:
    """SVPR-ReID's split: ``query/`` images of the query camera whose pid the gallery camera's ``gallery/`` images hold."""
    g = [r for r in gallery if r.camid == g_cam]
    g_pids = {r.pid for r in g}
    return [r for r in query if r.camid == q_cam and r.pid in g_pids], g


@DATASET_REGISTRY.register("AGReIDv2")
class AGReIDv2(ReIDDataset):
    """AG-ReID.v2: train on ``train_all``; protocols A2C, C2A, A2W, W2A, all with the market rule.

    ``protocol_source='files'`` (default) reads the ``exp*.txt`` lists shipped with the data, as the
    SeCap reference does; ``'cameras'`` instead takes the query camera's images of ``query/`` and the
    gallery camera's images of ``gallery/``, keeping queries whose pid the gallery holds (SVPR-ReID).
    Identity = int(P+T+A) as in v1; camids are the raw camera numbers 0/2/3 (views aerial, wearable,
    cctv); no junk identities. ``with_attributes`` attaches ``extras["attributes"]`` (88 values of ±1).
    Assumed: the lists may sit next to the images (no inner ``AG-ReID.v2`` folder) and the
    ``.mat`` file next to the lists or the images.

    ``ALL_svpr`` (every query against the whole gallery, SVPR-ReID's whole-set test) and
    ``A2C_svpr``, ``C2A_svpr``, ``A2W_svpr``, ``W2A_svpr`` are always built from the cameras as SVPR-ReID's
    ``AGReIDv2_AC`` / ``_CA`` / ``_AW`` / ``_WA`` (equal to the plain names under ``protocol_source='cameras'``).
    Option ``captions='svpr'`` adds SVPR's captions, 15 attribute labels and view labels (CCTV 0, wearable 1,
    UAV 2) as for AG-ReID v1 (:func:`agreid_v1.with_svpr_captions`).
    """

    def __init__(self, root: str, dataset_dir: str = "AG-ReID.v2", protocol_source: str = "files",
                 with_attributes: bool = True, captions: str = "none", caption_length: int = SVPR_CONTEXT_LENGTH,
                 caption_prompts: int = SVPR_NUM_PROMPTS) -> None:
        name = "AGReIDv2"
        text = caption_options(captions, caption_length, caption_prompts, name)
        check_caption_attributes(text, with_attributes, name)
        if protocol_source not in PROTOCOL_SOURCES:
            raise ValueError(f"{name}: protocol_source must be one of {', '.join(PROTOCOL_SOURCES)}, "
                             f"got {protocol_source!r}")
        data_dir = require_dir(os.path.join(root, dataset_dir), name, V2_LAYOUT)
        inner = os.path.join(data_dir, INNER_DIR)
        image_dir = inner if os.path.isdir(inner) else data_dir

        def read(folder: str) -> List[ImageRecord]:
            paths = scan_images(os.path.join(image_dir, folder), True, name, V2_LAYOUT)
            return [parse_agreid_name(p, V2_VIEWS, name, V2_LAYOUT) for p in paths]

        train, query, gallery = read("train_all"), read("query"), read("gallery")
        files = {p: _read_protocol_file(os.path.join(data_dir, f), image_dir, name)
                 for p, (f, _, _) in V2_PROTOCOLS.items()} if protocol_source == "files" else {}
        self.attribute_names: Tuple[str, ...] = ()
        if with_attributes:
            candidates = [os.path.join(d, V2_ATTRIBUTE_FILE) for d in dict.fromkeys((data_dir, image_dir))]
            mat_path = next((c for c in candidates if os.path.isfile(c)), candidates[0])
            self.attribute_names, table = load_attribute_table(mat_path, name, V2_LAYOUT)

            def prepare(records: List[ImageRecord], is_train: bool = False) -> List[ImageRecord]:
                records = attach_attributes(records, table, mat_path, name)
                return records if text is None else with_svpr_captions(records, is_train, text, SVPR_V2_VIEW_IDS,
                                                                       name)

            train, query, gallery = prepare(train, True), prepare(query), prepare(gallery)
            files = {p: (prepare(q), prepare(g)) for p, (q, g) in files.items()}
            if text is not None:
                self.attribute_classes = ATTRIBUTE_GROUPS
        pairs = {}
        for p, (_, qc, gc) in V2_PROTOCOLS.items():
            q, g = _camera_protocol(query, gallery, qc, gc)
            if not q or not g:
                raise layout_error(name, f"protocol {p}: no {'query' if not q else 'gallery'} images of camera "
                                         f"C{qc if not q else gc} found under '{image_dir}'.", V2_LAYOUT)
            pairs[f"{p}_svpr"] = (q, g)
            pairs[p] = files.get(p, (q, g))
        pairs["ALL_svpr"] = (query, gallery)  # SVPR-ReID's whole-set test ("AGReIDv2", mode 'mix')
        protocols = {p: Protocol(query=tuple(q), gallery=tuple(g), rule="market") for p, (q, g) in pairs.items()}
        super().__init__(name, train, protocols, root=data_dir)
