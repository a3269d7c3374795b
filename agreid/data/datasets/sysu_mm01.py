"""SYSU-MM01 visible-infrared re-ID: infrared probes (cam3, cam6) searched in a single-shot visible gallery."""
from __future__ import annotations

import os
import re
from typing import Dict, List, Sequence, Tuple

from agreid.data.datasets.single_shot import (CameraGroup, check_num_trials, flatten_groups, list_camera_groups,
                                              read_id_line, single_shot_trials)
from agreid.data.records import INFRARED, VISIBLE, DatasetError, ImageRecord, Protocol, ReIDDataset, require_dir
from agreid.registries import DATASET_REGISTRY

VISIBLE_CAMERAS = ("cam1", "cam2", "cam4", "cam5")
INFRARED_CAMERAS = ("cam3", "cam6")
GALLERY_CAMERAS = {"all": VISIBLE_CAMERAS, "indoor": ("cam1", "cam2")}
FILE_NAME = re.compile(r"^\d+\.(?:jpe?g|png|bmp)$", re.IGNORECASE)

LAYOUT = """\
  <root>/SYSU-MM01/
    cam1/ cam2/ cam4/ cam5/    visible cameras:  <pid:04d>/<img:04d>.jpg
    cam3/ cam6/                infrared cameras: <pid:04d>/<img:04d>.jpg
    exp/train_id.txt  exp/val_id.txt  exp/test_id.txt   each one line of comma-separated ids
  Not every person appears in every camera; missing <camera>/<pid> folders are skipped."""


def _record(group: CameraGroup, path: str) -> ImageRecord:
    camid = int(group.camera_dir[len("cam"):])
    return ImageRecord(path=path, pid=group.pid, camid=camid,
                       modality=INFRARED if group.camera_dir in INFRARED_CAMERAS else VISIBLE)


def _records(data_dir: str, cameras: Sequence[str],
             pids: Sequence[int]) -> Tuple[List[ImageRecord], List[List[int]]]:
    return flatten_groups(list_camera_groups(data_dir, cameras, pids, "SYSU_MM01", LAYOUT, FILE_NAME), _record)


@DATASET_REGISTRY.register("SYSU_MM01")
class SYSUMM01(ReIDDataset):
    """SYSU-MM01 as the official protocol and the mangye16 / LLCM reference code read it.

    Train: every camera of the train (and, with ``use_val``, val) ids, 395 ids in all as in the reference.
    Protocols ``all`` and ``indoor``: query = every cam3/cam6 image of the test ids (IR → RGB); gallery =
    every image of the mode's visible cameras (cam1, 2, 4, 5 or cam1, 2), and ``num_trials`` single-shot
    trials, trial t drawing one image per (id, camera) after ``random.seed(t)``. Rule "sysu" (a cam3 probe
    skips all of cam2), CMC over unique ids. camid is the camera number; pid and camera come from the
    ``cam<k>/<pid>`` folders (the reference reads the same characters from fixed path positions). Folder
    listings are sorted, as the reference sorts them, so the draws do not depend on ``os.listdir`` order.
    """

    def __init__(self, root: str, dataset_dir: str = "SYSU-MM01", num_trials: int = 10,
                 use_val: bool = True) -> None:
        data_dir = require_dir(os.path.join(root, dataset_dir), "SYSU_MM01", LAYOUT)
        num_trials = check_num_trials(num_trials, "SYSU_MM01")
        exp = os.path.join(data_dir, "exp")
        train_ids = read_id_line(os.path.join(exp, "train_id.txt"), "SYSU_MM01", LAYOUT)
        if use_val:
            train_ids += read_id_line(os.path.join(exp, "val_id.txt"), "SYSU_MM01", LAYOUT)
        test_ids = read_id_line(os.path.join(exp, "test_id.txt"), "SYSU_MM01", LAYOUT)
        train, _ = _records(data_dir, VISIBLE_CAMERAS + INFRARED_CAMERAS, train_ids)
        self._require(train, data_dir, "training", "cam1..cam6/<pid> folders of the train ids")
        query, _ = _records(data_dir, INFRARED_CAMERAS, test_ids)
        self._require(query, data_dir, "query", "cam3/<pid> or cam6/<pid> folders of the test ids")
        protocols: Dict[str, Protocol] = {}
        for mode, cameras in GALLERY_CAMERAS.items():
            gallery, groups = _records(data_dir, cameras, test_ids)
            self._require(gallery, data_dir, f"'{mode}' gallery",
                          f"{'/'.join(cameras)} <pid> folders of the test ids")
            protocols[mode] = Protocol(
                query=tuple(query), gallery=tuple(gallery), rule="sysu", cmc="unique_ids",
                trials=single_shot_trials(groups, num_trials, "gallery"),
                options={"mode": mode, "single_shot": "gallery", "trial_seeds": tuple(range(num_trials))})
        super().__init__("SYSU_MM01", train, protocols, root=data_dir)

    @staticmethod
    def _require(records: List[ImageRecord], data_dir: str, split: str, where: str) -> None:
        if not records:
            raise DatasetError(f"SYSU_MM01: no {split} images under '{data_dir}' (looked in the {where}).\n"
                               f"Expected layout:\n{LAYOUT}")
