"""SVPR-ReID trains from its shipped config on each of its other three datasets (AG-ReID, AG-ReID.v2, CARGO), each
generated in its real layout: a tiny CLIP, every loss term of that dataset logged, every configured test scored."""
import json
import os
from pathlib import Path

import pytest
import torch

from ag_image_helpers import write_jpeg
from engine_helpers import REPO, model_config, run_cli
from test_dataset_agreid import composite, write_attribute_mat
from test_svpr import FIXTURE, tiny_overrides

PERSONS = range(1, 5)


def colour(pid: int):
    return (pid * 53) % 256, (pid * 101) % 256, 120


def agreid_name(pid: int, cam: int, frame: int) -> str:
    return f"P{pid:04d}T04041A0C{cam}F{frame:04d}.jpg"


def make_agreid(root: Path) -> None:
    """AG-ReID v1: flat folders, cameras C0 (aerial) / C3 (ground), the 88-column attribute file."""
    data, ids = root / "AG-ReID", set()
    folders = {"bounding_box_train": (PERSONS, (0, 3)), "query_all_c0": ((7, 8), (0,)), "query_all_c3": ((7, 8), (3,)),
               "bounding_box_test_all_c0": ((7, 8), (0,)), "bounding_box_test_all_c3": ((7, 8), (3,))}
    for f, (folder, (persons, cams)) in enumerate(folders.items()):
        for pid in persons:
            for cam in cams:
                for k in range(2 if folder == "bounding_box_train" else 1):
                    name = agreid_name(pid, cam, 10 * f + k)
                    write_jpeg(data / folder / name, (32, 16), colour(pid))
                    ids.add(composite(name))
    train = sorted(composite(agreid_name(p, 0, 0)) for p in PERSONS)
    write_attribute_mat(data / "qut_attribute_v4_88_attributes.mat", train, sorted(ids - set(train)))


def make_agreid_v2(root: Path) -> None:
    """AG-ReID.v2: per-identity folders under train_all / query / gallery, cameras C0 / C2 / C3 (no exp lists:
    protocol_source=cameras), the attribute file beside them."""
    outer, ids = root / "AG-ReID.v2", set()
    for split, persons in (("train_all", PERSONS), ("query", (7, 8)), ("gallery", (7, 8))):
        for pid in persons:
            for cam in (0, 2, 3):
                name = agreid_name(pid, cam, {"train_all": 1, "query": 2, "gallery": 3}[split])
                write_jpeg(outer / "AG-ReID.v2" / split / name[:13] / name, (32, 16), colour(pid))
                ids.add(composite(name))
    train = sorted(composite(agreid_name(p, 0, 0)) for p in PERSONS)
    write_attribute_mat(outer / "qut_attribute_v8.mat", train, sorted(ids - set(train)))


def make_cargo(root: Path) -> None:
    """CARGO: Cam1..Cam5 aerial, Cam6..Cam13 ground, ``Cam<c>_<day|night>_<pid>_<n>.jpg``."""
    for split, persons in (("train", PERSONS), ("query", (7, 8)), ("gallery", (7, 8))):
        for pid in persons:
            for cam in ((2, 7) if split == "train" else (1, 6) if split == "query" else (3, 8)):
                for k in range(2 if split == "train" else 1):
                    write_jpeg(root / "CARGO" / split / f"Cam{cam}" / f"Cam{cam}_day_{pid:04d}_{k}.jpg", (32, 16),
                               colour(pid))


CASES = {"AGReID": (make_agreid, [], {"loss_cls", "loss_triplet", "loss_view", "loss_attr"}),
         "AGReIDv2": (make_agreid_v2, ["AGReIDv2:protocol_source=cameras"],
                      {"loss_cls", "loss_triplet", "loss_view", "loss_attr"}),
         "CARGO": (make_cargo, [], {"loss_cls", "loss_triplet", "loss_view"})}  # CARGO: no attributes


@pytest.mark.parametrize("dataset", sorted(CASES))
def test_trains_from_its_config(dataset, tmp_path):
    make, options, losses = CASES[dataset]
    make(tmp_path / "data")
    config = os.path.join(REPO, "configs", dataset, "svpr.yml")
    fx = torch.load(FIXTURE, weights_only=True)
    opts = {**tiny_overrides(fx), "DATASETS__ROOT_DIR": str(tmp_path / "data"), "OUTPUT_DIR": str(tmp_path / "out"),
            "DATASETS__OPTIONS": json.dumps(["captions=svpr"] + options), "SOLVER__AMP__ENABLED": False,
            "SOLVER__IMS_PER_BATCH": 4, "DATALOADER__NUM_INSTANCE": 2, "DATALOADER__NUM_WORKERS": 0,
            "SOLVER__MAX_EPOCH": 2, "SOLVER__ITERS_PER_EPOCH": 2, "SOLVER__WARMUP_EPOCHS": 1, "SOLVER__STEPS": "[1]",
            "SOLVER__LOG_PERIOD": 1, "SOLVER__CHECKPOINT_PERIOD": 2, "TEST__EVAL_PERIOD": 2, "TEST__IMS_PER_BATCH": 4,
            "INPUT__PADDING__SIZE": 2, "SEED": 0}
    flat = [x for k, v in opts.items() for x in (k.replace("__", "."), str(v))]
    results = run_cli("--config-file", config, *flat)
    assert set(results) == set(model_config(config).DATASETS.TESTS)
    steps = [line for line in map(json.loads, open(tmp_path / "out" / "metrics.json")) if "total_loss" in line]
    assert len(steps) == 4 and all(losses <= set(s) for s in steps), steps[0].keys()
    assert all(torch.isfinite(torch.tensor(s["total_loss"])) for s in steps)
