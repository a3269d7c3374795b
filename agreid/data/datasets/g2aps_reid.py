"""G2APS-ReID: aerial-ground re-ID cropped from the G2APS person-search dataset (one drone, one ground view).

The dataset is rebuilt locally with ``scripts/build_g2aps_reid.py``; this adapter reads the result
(or a copy named ``GA-ReID/``, the folder name SeCap's loader expects).
"""
from __future__ import annotations

import re
from typing import Optional, Sequence, Union

from agreid.data.datasets.parsing import read_secap_layout, search_ints
from agreid.data.records import AERIAL, GROUND, ImageRecord, ReIDDataset
from agreid.registries import DATASET_REGISTRY

NAME = "G2APS_ReID"
FOLDERS = ("G2APS-ReID", "GA-ReID")
PROTOCOL_FILES = {"A2G": "exp3_A2G+.txt", "G2A": "exp4_G2A+.txt"}
DISTRACTOR_PID = 5555
DRONE_CAMERA = 0
_NAME = re.compile(r"([-\d]+)_c(\d)v(\d)")
_EXPECTED = "'<pid:04d>_c<0|3>v<seq>_<frame:06d>.jpg'"

LAYOUT = """\
  <root>/G2APS-ReID/  or  <root>/GA-ReID/     (or the same entries directly in <root>)
    bounding_box_train/<pid>/<pid:04d>_c{0|3}v<seq>_<frame:06d>.jpg
    bounding_box_test_c0/<pid>/...  bounding_box_test_c3/<pid>/...
    query_c0/<pid>/...              query_c3/<pid>/...
    bounding_box_gallery/5555_c{0|3}v<seq>_<frame:06d>.jpg      distractors (pid 5555)
    exp3_A2G+.txt                   protocol A2G (query_c0 + bounding_box_test_c3 + ground distractors)
    exp4_G2A+.txt                   protocol G2A (query_c3 + bounding_box_test_c0 + aerial distractors)
  Camera 0 is the drone (aerial), camera 3 the ground camera. Build it from the G2APS release with
  scripts/build_g2aps_reid.py."""


def g2aps_record(path: str, rel_path: str, where: str) -> ImageRecord:
    """One record: camera 0 → camid 0, aerial; any other camera → camid 1, ground (SeCap's mapping)."""
    pid, camera, sequence = search_ints(_NAME, rel_path, where, NAME, LAYOUT, _EXPECTED)
    aerial = camera == DRONE_CAMERA
    return ImageRecord(path=path, pid=pid, camid=0 if aerial else 1, view=AERIAL if aerial else GROUND,
                       extras={"camera": camera, "sequence": sequence,
                               "distractor": pid == DISTRACTOR_PID})


@DATASET_REGISTRY.register(NAME)
class G2APS_ReID(ReIDDataset):
    """G2APS-ReID with protocols ``A2G`` (exp3) and ``G2A`` (exp4), rule ``market``.

    Follows SeCap's loader: train is every image one folder below ``bounding_box_train/`` (pid -1
    dropped), query and gallery come from the protocol lists, and the pid-5555 distractors stay in
    the gallery under their own pid, so they only ever count as false matches. Options:
    ``dataset_dir`` (default: ``G2APS-ReID`` then ``GA-ReID``, falling back to the root itself),
    ``protocols`` (subset to load) and ``check_files`` (verify listed test images exist, default
    true). ``extras`` keep the raw camera code, the sequence digit and a ``distractor`` flag.
    """

    def __init__(self, root: str, dataset_dir: Optional[str] = None,
                 protocols: Union[str, Sequence[str], None] = None,
                 check_files: Union[bool, str] = True) -> None:
        folders = [dataset_dir] if dataset_dir else list(FOLDERS)
        data_dir, train, built = read_secap_layout(root, folders, NAME, LAYOUT, g2aps_record, PROTOCOL_FILES,
                                                   protocols, check_files)
        super().__init__(NAME, train, built, root=data_dir)
