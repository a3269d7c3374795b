"""Published split sizes of the registered datasets, for checking a copy on disk (``tools/dataset_stats.py``).

Every number is stated in ``shared/specs/datasets.md``; None means the spec gives no such number.
"""
from __future__ import annotations

from typing import Dict, Optional, Union

Counts = Dict[str, Optional[int]]
Entry = Dict[str, Union[str, Counts]]


def _counts(ids: Optional[int] = None, images: Optional[int] = None, cameras: Optional[int] = None) -> Counts:
    return {"ids": ids, "images": images, "cameras": cameras}


PUBLISHED: Dict[str, Entry] = {
    "LAGPeR": {
        "source": "SeCap-AGPReID README table (whose third block, labelled A->G, holds the G->A+G numbers).",
        "train": _counts(2708, 40770, 12),
        "A2G/query": _counts(1523, 3046, 3),
        "A2G/gallery": _counts(1523, 15533, 6),
        "G2A/query": _counts(1523, 3046, 6),
        "G2A/gallery": _counts(1523, 7717, 3),
        "G2AG/query": _counts(1523, 3046, 6),
        "G2AG/gallery": _counts(1523, 20204, 9),
    },
    "G2APS_ReID": {
        "source": "SeCap-AGPReID README table; it does not say whether the gallery counts include the "
                  "pid-5555 distractors that the exp3/exp4 lists add.",
        "train": _counts(1569, 100871, 2),
        "A2G/query": _counts(1219, 4876, 1),
        "A2G/gallery": _counts(1219, 37202, 1),
        "G2A/query": _counts(1219, 4876, 1),
        "G2A/gallery": _counts(1219, 62791, 1),
    },
    "CP2108": {
        "source": "Only totals are published (AAAI'26 abstract: 142,817 images, 2,108 ids); split counts "
                  "were not found.",
        "train": _counts(),
        **{f"{p}/{side}": _counts() for p in ("ALL", "AG", "GA", "AA", "GG", "AGAG", "AAGG")
           for side in ("query", "gallery")},
    },
    "CARGO": {
        "source": "VDT-AGPReID README: train 2,500 ids / 51,451 images, P2 G<->G and P3 A<->A query and "
                  "gallery sizes; ALL and A2G split sizes are not stated (test total 51,024 images).",
        "train": _counts(2500, 51451),
        "ALL/query": _counts(),
        "ALL/gallery": _counts(),
        "A2G/query": _counts(),
        "A2G/gallery": _counts(),
        "A2A/query": _counts(89, 178),
        "A2A/gallery": _counts(2447, 32268),
        "G2G/query": _counts(60, 134),
        "G2G/gallery": _counts(2404, 18444),
    },
    "AGReID": {
        "source": "huynguyen792/AG-ReID README (2024 version, 3,331 ground gallery images; the 2023 README "
                  "said 3,255) and the AG-ReID.v2 comparison table (199 train ids); cameras from the "
                  "query_all_c0/c3 and bounding_box_test_all_c0/c3 folders. Train image count not found.",
        "train": _counts(199),
        "A2G/query": _counts(None, 1701, 1),
        "A2G/gallery": _counts(None, 3331, 1),
        "G2A/query": _counts(None, 962, 1),
        "G2A/gallery": _counts(None, 7204, 1),
    },
    "AGReIDv2": {
        "source": "AG-ReID.v2 README: 807 train ids; cameras from the protocol names (UAV C0, CCTV C3, "
                  "wearable C2). Per-protocol id and image counts were not found.",
        "train": _counts(807),
        "A2C/query": _counts(None, None, 1),
        "A2C/gallery": _counts(None, None, 1),
        "C2A/query": _counts(None, None, 1),
        "C2A/gallery": _counts(None, None, 1),
        "A2W/query": _counts(None, None, 1),
        "A2W/gallery": _counts(None, None, 1),
        "W2A/query": _counts(None, None, 1),
        "W2A/gallery": _counts(None, None, 1),
    },
    "MSSL": {
        "source": "SkyGroundReID README: train 35,330 images / 1,125 ids; test 31,598 images / 974 ids "
                  "without saying how they divide into query and gallery. Query counts were not found.",
        "train": _counts(1125, 35330),
        **{f"{p}/{side}": _counts() for p in ("S2G", "G2S", "DDC") for side in ("query", "gallery")},
    },
    "AGVPReID": {
        "source": "Kaggle challenge sample_submission.csv: 3,023 case-1 and 2,751 case-2 query tracklets "
                  "(images here count tracklets). Split sizes of the full version were not found.",
        "train": _counts(),
        "A2G/query": _counts(None, 3023),
        "A2G/gallery": _counts(),
        "G2A/query": _counts(None, 2751),
        "G2A/gallery": _counts(),
    },
    "SYSU_MM01": {
        "source": "wuancong/SYSU-MM01 README and the mangye16 code: 395 train ids (train + val, the default "
                  "use_val), probes = IR cam3 and cam6 of the 96 test ids, gallery = RGB cam1, 2, 4, 5 "
                  "(all) or cam1, 2 (indoor). Per-split image counts were not found.",
        "train": _counts(395),
        "all/query": _counts(96, None, 2),
        "all/gallery": _counts(None, None, 4),
        "indoor/query": _counts(96, None, 2),
        "indoor/gallery": _counts(None, None, 2),
    },
    "RegDB": {
        "source": "206 train / 206 test ids per trial, one visible and one thermal camera, 2,060 lines per "
                  "idx file (third-party reproduction report; train = visible + thermal lists).",
        "train": _counts(206, 4120, 2),
        "V2T/query": _counts(206, 2060, 1),
        "V2T/gallery": _counts(206, 2060, 1),
        "T2V/query": _counts(206, 2060, 1),
        "T2V/gallery": _counts(206, 2060, 1),
    },
    "LLCM": {
        "source": "ZYK100/LLCM code: 713 train ids; queries from test_nir (cameras 1, 2, 4-9) and gallery "
                  "from test_vis (cameras 1-9) in both protocols. Official per-split counts were not found.",
        "train": _counts(713),
        "IR2VIS/query": _counts(None, None, 8),
        "IR2VIS/gallery": _counts(None, None, 9),
        "VIS2IR/query": _counts(None, None, 8),
        "VIS2IR/gallery": _counts(None, None, 9),
    },
}
"""``{dataset: {"source": note, subset: {"ids": n, "images": n, "cameras": n}}}``.

Subsets are "train" and "<PROTOCOL>/query" / "<PROTOCOL>/gallery"; a count is an int or None (not published)."""
