"""MSP from the command line: configs/MSSL/msp.yml with a tiny CLIP runs its three stages (sky prompts, ground
prompts, image) on a generated MSSL layout, each with falling loss, under both settings of its defect switches."""
import json
import os

import cv2
import numpy as np
import pytest

from engine_helpers import REPO, run_cli, tiny_opts

from agreid.utils.checkpoint import load_checkpoint_file
from test_clipreid_training import TINY_CLIP

CONFIG = os.path.join(REPO, "configs", "MSSL", "msp.yml")
GROUND_CAMS, SKY_CAMS = (1, 2), (4, 5)


def mssl_name(pid: int, cam: int, index: int) -> str:
    return f"{pid:04d}_0909am_3_G003_c{cam:02d}_p{pid:04d}_p0115_{index:02d}.jpg"


def write(root: str, folder: str, pid: int, cam: int, index: int) -> None:
    rng = np.random.default_rng(pid * 100 + cam * 10 + index)
    img = np.zeros((64, 32, 3), np.uint8)
    img[:32] = (pid * 37) % 256, (pid * 91) % 256, 60  # identity colour, upper body
    img[32:] = 40 if cam in SKY_CAMS else 200  # view-dependent lower half
    img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    path = os.path.join(root, "MSSL", folder, mssl_name(pid, cam, index))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, img)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mssl"))
    for pid in range(1, 9):  # 8 training identities, each seen from both views
        for cam in GROUND_CAMS + SKY_CAMS:
            for i in range(3):
                write(root, "bounding_box_train", pid, cam, i)
    for pid in range(100, 104):
        for cam in GROUND_CAMS + SKY_CAMS:
            write(root, "bounding_box_test", pid, cam, 0)
        write(root, "query_air", pid, SKY_CAMS[1], 1)
        write(root, "query_ground", pid, GROUND_CAMS[1], 2)
        write(root, "query", pid, SKY_CAMS[0], 3)
    return root


def msp_opts(data_root, out, **extra):
    opts = {**TINY_CLIP, "DATASETS.OPTIONS": "[]", "SEED": "0", "MODEL.CLIP.STRIDE_SIZE": "8",
            "SOLVER.STAGE1.MAX_EPOCH": "4", "SOLVER.STAGE1.IMS_PER_BATCH": "4096", "SOLVER.STAGE1.BASE_LR": "0.001",
            "SOLVER.STAGE1.WARMUP_EPOCHS": "1", "SOLVER.STAGE1.LOG_PERIOD": "1", "SOLVER.BASE_LR": "0.001",
            "SOLVER.STEPS": "[2]", "SOLVER.WARMUP_EPOCHS": "1", "SOLVER.WARMUP_ITERS": "0", "SOLVER.LOG_PERIOD": "1",
            "SOLVER.ITERS_PER_EPOCH": "4", "TEST.EVAL_PERIOD": "3", "SOLVER.AMP.ENABLED": "False"}
    opts.update(extra)
    flat = tiny_opts(data_root, out, **opts)
    return flat[2:]  # drop tiny_opts' AGDemo options (MSSL takes none)


def series(path, key):
    return [line[key] for line in map(json.loads, open(path)) if key in line]


@pytest.mark.parametrize("fixed", [False, True])
def test_three_stages_with_falling_losses(data_root, tmp_path, fixed):
    out = str(tmp_path)
    flags = {"MODEL.MSP.MASK_AIR_LOSS": str(fixed), "MODEL.MSP.ALIGN_BY_PID": str(fixed)}
    results = run_cli("--config-file", CONFIG, *msp_opts(data_root, out, **flags))
    assert set(results) == {"MSSL/S2G", "MSSL/G2S", "MSSL/DDC"}
    for stage, view in (("prompt_sky", "sky"), ("prompt_ground", "ground")):
        assert os.path.isfile(os.path.join(out, "cache", f"clip_image_features_{view}.pth"))
        total = series(os.path.join(out, f"metrics_{stage}.json"), "total_loss")
        assert len(total) == 4 and total[-1] < total[0], (stage, total)
    lines = [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]
    keys = set().union(*lines)
    assert {"loss_air", "loss_ground"} <= keys, keys
    total = [line["total_loss"] for line in lines if "total_loss" in line]
    assert sum(total[-3:]) < sum(total[:3]), total
    final = load_checkpoint_file(os.path.join(out, "model_final.pth"))["model"]
    assert final["view_banks_ready"].tolist() == [1, 1]
    assert final["text_bank_sky"].abs().sum() > 0 and final["text_bank_ground"].abs().sum() > 0
