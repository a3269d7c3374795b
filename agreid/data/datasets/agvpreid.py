"""AG-VPReID (CVPR 2025): video tracklets from CCTV, wearable and UAV cameras; aerial↔ground protocols."""
from __future__ import annotations

import csv
import os
import re
from typing import Dict, List

import numpy as np

from agreid.data.datasets.agreid_v1 import IMAGE_EXTENSIONS, layout_error
from agreid.data.records import (AERIAL, CCTV, WEARABLE, DatasetError, Protocol, ReIDDataset, TrackletRecord,
                                 require_dir)
from agreid.registries import DATASET_REGISTRY

VP_VIEWS = {0: CCTV, 1: CCTV, 2: WEARABLE, 3: WEARABLE, 4: AERIAL, 5: AERIAL}
VP_CASES = {"A2G": "case1_aerial_to_ground", "G2A": "case2_ground_to_aerial"}
ATTRIBUTE_COLUMNS = ("gender", "age", "height", "body_volume", "ethnicity", "hair_color", "hairstyle", "beard",
                     "moustache", "glasses", "head_accessories", "upper_body_clothing", "lower_body_clothing",
                     "footwear", "accessories")
CAMERA_PATTERN = re.compile(r"[^C]*C(\d+)E")
FRAME_GRAMMAR = "P<pid>T<date>A<altitude>C<camera>E<..>K<..>F<frame>.jpg, e.g. P123T230811A1C2E1K1F001.jpg"

VP_LAYOUT = f"""\
  <root>/<dataset_dir, default AG-VPReID>/
    train/<person_id>/<tracklet>/<frame>.jpg
    case1_aerial_to_ground/query/<person_id>/<tracklet>/<frame>.jpg     (A2G)
    case1_aerial_to_ground/gallery/<person_id>/<tracklet>/<frame>.jpg
    case2_ground_to_aerial/query/<person_id>/<tracklet>/<frame>.jpg     (G2A)
    case2_ground_to_aerial/gallery/<person_id>/<tracklet>/<frame>.jpg
    attributes/train.csv, attributes/case*/{{query,gallery}}.csv          (optional, columns id,gender,...)
  <person_id> is an integer folder name; frames are named {FRAME_GRAMMAR};
  cameras C0/C1 are CCTV, C2/C3 wearable, C4/C5 UAV (aerial)."""


def _subdirs(folder: str) -> List[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir())


def read_attribute_csv(path: str, dataset: str = "AGVPReID") -> Dict[int, np.ndarray]:
    """``{person id: int64 vector of the 15 attribute codes}`` from one attribute CSV, or {} if it is absent."""
    if not os.path.isfile(path):
        return {}
    table: Dict[int, np.ndarray] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("id",) + ATTRIBUTE_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise DatasetError(f"{dataset}: '{path}' lacks column(s) {', '.join(missing)}; expected the header "
                               f"'id,{','.join(ATTRIBUTE_COLUMNS)}'.")
        for row in reader:
            try:
                vector = np.array([int(row[c]) for c in ATTRIBUTE_COLUMNS], dtype=np.int64)
                pid = int(row["id"])
            except (TypeError, ValueError):
                raise DatasetError(f"{dataset}: '{path}', line {reader.line_num}: expected integers, got "
                                   f"{row}") from None
            vector.setflags(write=False)
            table[pid] = vector
    return table


def read_tracklets(split_dir: str, attributes: Dict[int, np.ndarray],
                   dataset: str = "AGVPReID") -> List[TrackletRecord]:
    """Tracklets of ``split_dir/<person_id>/<tracklet>/`` with frames sorted by name, as the reference does.

    Empty tracklet folders are skipped (as in the reference); the camera comes from the first frame.
    """
    require_dir(split_dir, dataset, VP_LAYOUT)
    records: List[TrackletRecord] = []
    for person in _subdirs(split_dir):
        if not person.isdigit():
            raise layout_error(dataset, f"person folder '{os.path.join(split_dir, person)}' is not an integer "
                                        f"identity.", VP_LAYOUT)
        pid = int(person)
        person_dir = os.path.join(split_dir, person)
        for tracklet in _subdirs(person_dir):
            tracklet_dir = os.path.join(person_dir, tracklet)
            names = sorted(n for n in os.listdir(tracklet_dir) if n.lower().endswith(IMAGE_EXTENSIONS))
            if not names:
                continue
            match = CAMERA_PATTERN.match(names[0])
            camid = int(match.group(1)) if match else -1
            if camid not in VP_VIEWS:
                raise layout_error(dataset, f"cannot read a camera C0-C5 from frame "
                                            f"'{os.path.join(tracklet_dir, names[0])}'; expected {FRAME_GRAMMAR}.",
                                   VP_LAYOUT)
            extras = {"attributes": attributes[pid]} if pid in attributes else {}
            records.append(TrackletRecord(path=tracklet_dir, pid=pid, camid=camid, view=VP_VIEWS[camid],
                                          extras=extras,
                                          frames=tuple(os.path.join(tracklet_dir, n) for n in names)))
    if not records:
        raise layout_error(dataset, f"no tracklets found in '{split_dir}'.", VP_LAYOUT)
    return records


@DATASET_REGISTRY.register("AGVPReID")
class AGVPReID(ReIDDataset):
    """AG-VPReID video re-ID: tracklet records; protocols A2G (case 1) and G2A (case 2), market rule.

    Query and gallery keep the raw folder ids (the baseline's per-folder remapping would break
    matching whenever the two folders hold different id sets); train ids are relabelled sorted, as
    the baseline sorts them. No junk ids. When an attribute CSV exists its 15 codes go to
    ``extras["attributes"]`` of the tracklets whose id it lists. The Kaggle challenge release
    anonymises test ids, so its local scores are meaningless; use the full release for metrics.
    """

    def __init__(self, root: str, dataset_dir: str = "AG-VPReID") -> None:
        name = "AGVPReID"
        data_dir = require_dir(os.path.join(root, dataset_dir), name, VP_LAYOUT)
        attr_dir = os.path.join(data_dir, "attributes")

        def read(split: str) -> List[TrackletRecord]:
            attributes = read_attribute_csv(os.path.join(attr_dir, f"{split}.csv"), name)
            return read_tracklets(os.path.join(data_dir, split), attributes, name)

        train = read("train")
        protocols = {}
        for proto, case in VP_CASES.items():
            query = read(os.path.join(case, "query"))
            gallery = read(os.path.join(case, "gallery"))
            protocols[proto] = Protocol(query=tuple(query), gallery=tuple(gallery), rule="market")
        super().__init__(name, train, protocols, root=data_dir)
