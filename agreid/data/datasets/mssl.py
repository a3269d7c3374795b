"""MSSL (Multi-Source Sky-Land): 9 ground and 6 sky cameras; S2G, G2S and DDC protocols sharing one gallery."""
from __future__ import annotations

import os
import re
from typing import List

from agreid.data.datasets.agreid_v1 import layout_error, scan_images
from agreid.data.records import AERIAL, GROUND, ImageRecord, Protocol, ReIDDataset, require_dir
from agreid.registries import DATASET_REGISTRY

SKY_CAMERAS = (4, 5, 9, 10, 14, 15)
JUNK_PID = -1
_PID_TOKEN = re.compile(r"^-?\d+$")
_CAMERA_TOKEN = re.compile(r"^[cC](\d+)$")
MSSL_PROTOCOLS = {"S2G": ("query_air", "mssl_s2g"), "G2S": ("query_ground", "mssl_g2s"), "DDC": ("query", "market")}
"""Protocol name → (query folder, gallery rule); every protocol ranks against ``bounding_box_test``."""
NAME_GRAMMAR = ("<pid>_<time>_<height>_<group>_c<camera 01-15>_<co-occurring ids...>_<index>.jpg, "
                "e.g. 0065_0909am_3_G003_c05_p0065_p0115_p0167_00.jpg")

MSSL_LAYOUT = f"""\
  <root>/<dataset_dir, default MSSL>/
    bounding_box_train/   training images (flat)
    bounding_box_test/    gallery of every protocol
    query/                DDC queries (both domains)
    query_air/            S2G queries (sky)
    query_ground/         G2S queries (ground)
  Images are named {NAME_GRAMMAR}.
  Cameras c01-03, c06-08, c11-13 are ground, c04, c05, c09, c10, c14, c15 sky (view 'aerial')."""


def parse_mssl_name(path: str, dataset: str = "MSSL") -> ImageRecord:
    """Record of one MSSL image: pid = token 0, camid = camera number - 1 (0-based, as the reference).

    ``extras`` keeps the capture time, height level and group tokens as written in the name.
    """
    tokens = os.path.splitext(os.path.basename(path))[0].split("_")
    match = _CAMERA_TOKEN.match(tokens[4]) if len(tokens) > 4 else None
    camera = int(match.group(1)) if match else 0
    if not _PID_TOKEN.match(tokens[0]) or not 1 <= camera <= 15:
        raise layout_error(dataset, f"cannot parse image name '{path}'; expected {NAME_GRAMMAR}.", MSSL_LAYOUT)
    view = AERIAL if camera in SKY_CAMERAS else GROUND
    return ImageRecord(path=path, pid=int(tokens[0]), camid=camera - 1, view=view,
                       extras={"capture_time": tokens[1], "height_level": tokens[2], "group": tokens[3]})


@DATASET_REGISTRY.register("MSSL")
class MSSL(ReIDDataset):
    """MSSL: train on ``bounding_box_train``; S2G, G2S and DDC rank their query folder against ``bounding_box_test``.

    Rules follow the reference ``eval_func``: S2G removes same-pid sky gallery images (``mssl_s2g``),
    G2S same-pid ground images (``mssl_g2s``), DDC same-pid same-camera images (``market``). pid -1
    is skipped in every folder. pid 9999 (undocumented, most likely a distractor label) is kept as
    the reference keeps it: a gallery distractor and, if present in training, its own class.
    """

    def __init__(self, root: str, dataset_dir: str = "MSSL") -> None:
        name = "MSSL"
        data_dir = require_dir(os.path.join(root, dataset_dir), name, MSSL_LAYOUT)

        def read(folder: str) -> List[ImageRecord]:
            source = os.path.join(data_dir, folder)
            records = [parse_mssl_name(p, name) for p in scan_images(source, False, name, MSSL_LAYOUT)]
            kept = [r for r in records if r.pid != JUNK_PID]
            if not kept:
                raise layout_error(name, f"'{source}' holds only junk (pid -1) images.", MSSL_LAYOUT)
            return kept

        train = read("bounding_box_train")
        gallery = tuple(read("bounding_box_test"))
        protocols = {p: Protocol(query=tuple(read(folder)), gallery=gallery, rule=rule)
                     for p, (folder, rule) in MSSL_PROTOCOLS.items()}
        super().__init__(name, train, protocols, root=data_dir)
