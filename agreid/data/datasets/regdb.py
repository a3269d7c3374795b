"""RegDB visible-thermal re-ID: one of ten fixed 206/206 identity splits, searched visible → thermal or back."""
from __future__ import annotations

import os
from typing import List, Tuple

from agreid.data.datasets.custom import check_images_exist
from agreid.data.records import INFRARED, VISIBLE, DatasetError, ImageRecord, Protocol, ReIDDataset, require_dir
from agreid.registries import DATASET_REGISTRY

VISIBLE_CAMID = 1
THERMAL_CAMID = 2
NUM_TRIALS = 10

LAYOUT = """\
  <root>/RegDB/
    Visible/<id>/*.bmp   Thermal/<id>/*.bmp
    idx/train_visible_<t>.txt  idx/train_thermal_<t>.txt    t = 1..10, lines '<path relative to RegDB/> <label>'
    idx/test_visible_<t>.txt   idx/test_thermal_<t>.txt     e.g. 'Visible/1/male_front_v_00007_1.bmp 0'"""


def read_index_list(list_path: str, data_dir: str, dataset: str, layout: str) -> List[Tuple[str, int]]:
    """(image path, label) pairs of a ``<relative path> <label>`` list file, paths joined to ``data_dir``.

    Shared by RegDB and LLCM, whose reference loaders read their ``idx/*.txt`` lists the same way.
    """
    if not os.path.isfile(list_path):
        raise DatasetError(f"{dataset}: expected file '{list_path}' was not found.\nExpected layout:\n{layout}")
    items: List[Tuple[str, int]] = []
    with open(list_path, encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle.read().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise DatasetError(f"{dataset}: '{list_path}', line {line_no}: expected '<relative path> <label>', "
                                   f"got {line[:120]!r}.\nExpected layout:\n{layout}")
            items.append((os.path.normpath(os.path.join(data_dir, fields[0])), int(fields[1])))
    if not items:
        raise DatasetError(f"{dataset}: '{list_path}' lists no images.\nExpected layout:\n{layout}")
    return items


def _read_split(data_dir: str, split: str, modality: str, trial: int) -> List[ImageRecord]:
    name = "visible" if modality == VISIBLE else "thermal"
    list_path = os.path.join(data_dir, "idx", f"{split}_{name}_{trial}.txt")
    camid = VISIBLE_CAMID if modality == VISIBLE else THERMAL_CAMID
    records = [ImageRecord(path=path, pid=label, camid=camid, modality=modality)
               for path, label in read_index_list(list_path, data_dir, "RegDB", LAYOUT)]
    check_images_exist(records, f"RegDB ({list_path})")
    return records


def _check_trial(trial: int) -> int:
    if isinstance(trial, bool) or not isinstance(trial, int) or not 1 <= trial <= NUM_TRIALS:
        raise ValueError(f"RegDB: option trial selects the idx/*_<trial>.txt split and must be an integer "
                         f"1..{NUM_TRIALS}, got {trial!r}")
    return trial


@DATASET_REGISTRY.register("RegDB")
class RegDB(ReIDDataset):
    """RegDB as the mangye16 / LLCM reference code reads it: split ``trial`` (1..10) of the ``idx`` lists.

    pid is the label of the list line (not parsed from the file name); visible images get camid 1 and
    thermal ones camid 2, as ``eval_regdb`` assigns, and rule "none" removes nothing. Protocols: ``V2T``
    (query ``test_visible_<t>``, gallery ``test_thermal_<t>``, the reference default) and ``T2V``
    (``--tvsearch``). The reference trains a separate model per trial and averages the ten results.
    """

    def __init__(self, root: str, dataset_dir: str = "RegDB", trial: int = 1) -> None:
        data_dir = require_dir(os.path.join(root, dataset_dir), "RegDB", LAYOUT)
        trial = _check_trial(trial)
        require_dir(os.path.join(data_dir, "idx"), "RegDB", LAYOUT)
        train = _read_split(data_dir, "train", VISIBLE, trial) + _read_split(data_dir, "train", INFRARED, trial)
        visible = tuple(_read_split(data_dir, "test", VISIBLE, trial))
        thermal = tuple(_read_split(data_dir, "test", INFRARED, trial))
        options = {"trial": trial}
        protocols = {"V2T": Protocol(query=visible, gallery=thermal, rule="none", options=options),
                     "T2V": Protocol(query=thermal, gallery=visible, rule="none", options=options)}
        super().__init__("RegDB", train, protocols, root=data_dir)
