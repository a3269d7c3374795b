"""LLCM low-light visible / near-infrared re-ID, with the reference code's single-shot trials in both directions."""
from __future__ import annotations

import os
import re
from typing import List

from agreid.data.datasets.custom import check_images_exist
from agreid.data.datasets.regdb import read_index_list
from agreid.data.datasets.single_shot import (CameraGroup, check_num_trials, flatten_groups, list_camera_groups,
                                              read_id_line, single_shot_trials)
from agreid.data.records import INFRARED, VISIBLE, DatasetError, ImageRecord, Protocol, ReIDDataset, require_dir
from agreid.registries import DATASET_REGISTRY

VIS_CAMERAS = tuple(f"test_vis/cam{k}" for k in range(1, 10))
NIR_CAMERAS = tuple(f"test_nir/cam{k}" for k in (1, 2, 4, 5, 6, 7, 8, 9))
_NAME_CAMERA = re.compile(r"^\d+_c(\d+)_", re.IGNORECASE)
_FOLDER_CAMERA = re.compile(r"^cam(\d+)$", re.IGNORECASE)

LAYOUT = """\
  <root>/LLCM/
    idx/train_vis.txt  idx/train_nir.txt   lines '<path relative to LLCM/> <label>',
                                           e.g. 'nir/0001/0001_c01_s185535_f7010_nir.jpg 0'
    idx/test_id.txt                        one line of comma-separated test ids
    test_vis/cam1 ... cam9/<pid:04d>/*.jpg
    test_nir/cam1, cam2, cam4 ... cam9/<pid:04d>/*.jpg   (no cam3 in the NIR test set)
    vis/ nir/                              the training images named in the idx lists"""


def _train_camera(path: str, list_path: str) -> int:
    match = _NAME_CAMERA.match(os.path.basename(path))
    if match:
        return int(match.group(1))
    for part in reversed(os.path.dirname(path).split(os.sep)):
        folder = _FOLDER_CAMERA.match(part)
        if folder:
            return int(folder.group(1))
    raise DatasetError(f"LLCM: cannot read the camera of '{path}' (listed in '{list_path}'): expected a file "
                       f"name '<pid>_c<cam>_...' or a 'cam<k>' folder.\nExpected layout:\n{LAYOUT}")


def _read_train(data_dir: str, list_name: str, modality: str) -> List[ImageRecord]:
    list_path = os.path.join(data_dir, "idx", list_name)
    records = [ImageRecord(path=path, pid=label, camid=_train_camera(path, list_path), modality=modality)
               for path, label in read_index_list(list_path, data_dir, "LLCM", LAYOUT)]
    check_images_exist(records, f"LLCM ({list_path})")
    return records


def _test_record(group: CameraGroup, path: str) -> ImageRecord:
    modality_dir, camera = group.camera_dir.split("/")
    return ImageRecord(path=path, pid=group.pid, camid=int(camera[len("cam"):]),
                       modality=INFRARED if modality_dir == "test_nir" else VISIBLE)


@DATASET_REGISTRY.register("LLCM")
class LLCM(ReIDDataset):
    """LLCM as ZYK100/LLCM (DEEN, AGW) reads it.

    Train: ``idx/train_vis.txt`` and ``idx/train_nir.txt`` (pid = the list label, shared by both modalities;
    camid from the ``<pid>_c<cam>_`` file name). Test pid and camid come from ``test_*/cam<k>/<pid>`` folders,
    so the same camera number in both modalities is the same camera, as in the reference.

    Both protocols have query = every ``test_nir`` image and gallery = every ``test_vis`` image of the test
    ids, rule "market" (same pid and camera removed, across modalities) and CMC over unique ids.
    ``IR2VIS`` (``test_mode [1, 2]``): each of the ``num_trials`` trials draws a single-shot visible gallery.
    ``VIS2IR`` (``test_mode [2, 1]``): the reference loads all visible images as "query" and single-shot NIR
    as "gallery" but then evaluates gallery × query, so the drawn NIR images are the probes searched in the
    full visible set; here each trial therefore subsets the query side. Draws follow ``random.seed(trial)``
    with sorted ids, cameras in the order above and sorted folder listings.
    """

    def __init__(self, root: str, dataset_dir: str = "LLCM", num_trials: int = 10) -> None:
        data_dir = require_dir(os.path.join(root, dataset_dir), "LLCM", LAYOUT)
        num_trials = check_num_trials(num_trials, "LLCM")
        require_dir(os.path.join(data_dir, "idx"), "LLCM", LAYOUT)
        train = _read_train(data_dir, "train_vis.txt", VISIBLE) + _read_train(data_dir, "train_nir.txt", INFRARED)
        test_ids = read_id_line(os.path.join(data_dir, "idx", "test_id.txt"), "LLCM", LAYOUT)
        sides = {}
        for folder, cameras in (("test_nir", NIR_CAMERAS), ("test_vis", VIS_CAMERAS)):
            require_dir(os.path.join(data_dir, folder), "LLCM", LAYOUT)
            groups = list_camera_groups(data_dir, cameras, test_ids, "LLCM", LAYOUT)
            records, positions = flatten_groups(groups, _test_record)
            if not records:
                raise DatasetError(f"LLCM: no test images of the ids in idx/test_id.txt under "
                                   f"'{os.path.join(data_dir, folder)}'.\nExpected layout:\n{LAYOUT}")
            sides[folder] = (tuple(records), positions)
        (nir, nir_groups), (vis, vis_groups) = sides["test_nir"], sides["test_vis"]
        seeds = tuple(range(num_trials))
        protocols = {
            "IR2VIS": Protocol(query=nir, gallery=vis, rule="market", cmc="unique_ids",
                               trials=single_shot_trials(vis_groups, num_trials, "gallery"),
                               options={"test_mode": (1, 2), "single_shot": "gallery", "trial_seeds": seeds}),
            "VIS2IR": Protocol(query=nir, gallery=vis, rule="market", cmc="unique_ids",
                               trials=single_shot_trials(nir_groups, num_trials, "query"),
                               options={"test_mode": (2, 1), "single_shot": "query", "trial_seeds": seeds}),
        }
        super().__init__("LLCM", train, protocols, root=data_dir)
