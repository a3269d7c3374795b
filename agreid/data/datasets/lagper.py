"""LAGPeR (SeCap, CVPR 2025): aerial-ground person re-ID over 21 cameras in 7 scenes.

Train is every image one folder below ``bounding_box_train/``; the three evaluation settings come
from the authors' protocol lists ``exp3_A2G+.txt``, ``exp4_G2A+.txt`` and ``exp5_G2A+G.txt``.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence, Union

from agreid.data.datasets.parsing import read_secap_layout, search_ints
from agreid.data.records import AERIAL, GROUND, ImageRecord, ReIDDataset
from agreid.registries import DATASET_REGISTRY

NAME = "LAGPeR"
PROTOCOL_FILES = {"A2G": "exp3_A2G+.txt", "G2A": "exp4_G2A+.txt", "G2AG": "exp5_G2A+G.txt"}
AERIAL_CAMERAS = frozenset({3, 6, 9, 13, 16, 19, 22})
_NAME = re.compile(r"([-\d]+)_c([-\d]+)")
_EXPECTED = "'<pid>_c<camera>...' (e.g. 0123_c13_...jpg)"

LAYOUT = """\
  <root>/LAGPeR/                       (or the same entries directly in <root>)
    bounding_box_train/<subdir>/<pid>_c<camera>*.jpg    exactly one sub-folder level
    exp3_A2G+.txt                      protocol A2G  (aerial query, ground gallery)
    exp4_G2A+.txt                      protocol G2A  (ground query, aerial gallery)
    exp5_G2A+G.txt                     protocol G2AG (ground query, aerial + ground gallery)
  One image path per list line, relative to LAGPeR/; a line whose first folder is 'query' or
  'query_*' is a query, any other line a gallery image. Raw cameras 1-22 (no 10);
  aerial cameras 3, 6, 9, 13, 16, 19, 22."""


def lagper_camid(camera: int) -> int:
    """SeCap's camera index: raw number up to 10, raw - 1 above (camera 10 does not exist), giving 1..21."""
    return camera if camera <= 10 else camera - 1


def lagper_record(path: str, rel_path: str, where: str) -> ImageRecord:
    """One record from an image path; pid and raw camera are the first ``<pid>_c<cam>`` in ``rel_path``."""
    pid, camera = search_ints(_NAME, rel_path, where, NAME, LAYOUT, _EXPECTED)
    return ImageRecord(path=path, pid=pid, camid=lagper_camid(camera),
                       view=AERIAL if camera in AERIAL_CAMERAS else GROUND, extras={"camera": camera})


@DATASET_REGISTRY.register(NAME)
class LAGPeR(ReIDDataset):
    """LAGPeR with protocols ``A2G``, ``G2A`` and ``G2AG`` (all fastreid market-style, rule ``market``).

    Follows SeCap's loader: pid and raw camera come from the first ``<pid>_c<cam>`` in the path
    (searched in the path relative to the dataset folder, so digits in the data root cannot
    interfere), ``camid`` is 1..21 with camera 10 skipped, pid -1 is dropped from train but kept
    in query and gallery (SeCap leaves its skip commented out there). Options: ``dataset_dir``
    (default ``LAGPeR``, falling back to the root itself), ``protocols`` (subset to load, default
    all three) and ``check_files`` (verify that every listed test image exists, default true).
    ``extras["camera"]`` keeps the raw camera number. ``exp1_A2G.txt`` / ``exp2_G2A.txt`` are never
    loaded by the reference either; what "+" adds to a list is undocumented, so lists are read as is.
    """

    def __init__(self, root: str, dataset_dir: Optional[str] = None,
                 protocols: Union[str, Sequence[str], None] = None,
                 check_files: Union[bool, str] = True) -> None:
        data_dir, train, built = read_secap_layout(root, [dataset_dir or NAME], NAME, LAYOUT, lagper_record,
                                                   PROTOCOL_FILES, protocols, check_files)
        super().__init__(NAME, train, built, root=data_dir)
