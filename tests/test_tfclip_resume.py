"""TF-CLIP and X-TFCLIP from the command line on a generated AG-VPReID layout: the memory stage then training
with every loss term and falling loss; X-TFCLIP interrupted mid-training resumes to the same weights, its online
label smoothing matrix included."""
import json
import os

import numpy as np
import pytest
import torch

from engine_helpers import REPO, assert_same_weights, ddp_train_worker, final_weights, interrupt_then_resume, run_cli
from test_dataset_agvpreid import frame_name

from agreid.data.opencv import cv2

CONFIGS = {name: os.path.join(REPO, "configs", "AGVPReID", f"{name}.yml") for name in ("tfclip", "xtfclip")}
TINY = {"MODEL.CLIP.VISION_WIDTH": "64", "MODEL.CLIP.VISION_LAYERS": "[2]", "MODEL.CLIP.EMBED_DIM": "64",
        "MODEL.CLIP.TEXT_WIDTH": "64", "MODEL.CLIP.TEXT_LAYERS": "1", "MODEL.TFCLIP.TMD_HEADS": "4"}


def write_tracklet(folder: str, pid: int, cam: int, frames: int = 4) -> None:
    for f in range(frames):
        rng = np.random.default_rng(pid * 1000 + cam * 10 + f)
        img = np.zeros((64, 32, 3), np.uint8)
        img[:] = (pid * 53) % 256, (pid * 101) % 256, 90
        img = np.clip(img.astype(int) + rng.integers(-25, 25, img.shape), 0, 255).astype(np.uint8)
        path = os.path.join(folder, frame_name(pid, cam, f))
        os.makedirs(folder, exist_ok=True)
        assert cv2.imwrite(path, img)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("agvp"))
    data, n = os.path.join(root, "AG-VPReID"), 0
    for pid in range(1, 7):  # 6 identities x 4 tracklets (2 aerial cameras 4/5, 2 ground 0/1)
        for cam in (0, 1, 4, 5):
            write_tracklet(os.path.join(data, "train", str(pid), f"tracklet_{n:02d}"), pid, cam)
            n += 1
    for case, q_cams, g_cams in (("case1_aerial_to_ground", (4,), (0, 1)), ("case2_ground_to_aerial", (0,), (4, 5))):
        for pid in (1700, 1701, 1702):
            for split, cams in (("query", q_cams), ("gallery", g_cams)):
                for cam in cams:
                    write_tracklet(os.path.join(data, case, split, str(pid), f"tracklet_{n:02d}"), pid, cam)
                    n += 1
    return root


def opts(data_root, out, **extra):
    o = {**TINY, "DATASETS.ROOT_DIR": data_root, "OUTPUT_DIR": out, "MODEL.DEVICE": "cpu", "SEED": "0",
         "INPUT.SEQ_LEN": "2", "INPUT.SIZE_TRAIN": "[64, 32]", "INPUT.SIZE_TEST": "[64, 32]",
         "SOLVER.IMS_PER_BATCH": "8", "DATALOADER.NUM_INSTANCE": "2", "DATALOADER.NUM_WORKERS": "0",
         "SOLVER.MAX_EPOCH": "5", "SOLVER.ITERS_PER_EPOCH": "3", "SOLVER.BASE_LR": "0.001", "SOLVER.STEPS": "[4]",
         "SOLVER.WARMUP_EPOCHS": "1", "SOLVER.LOG_PERIOD": "1", "SOLVER.CHECKPOINT_PERIOD": "1",
         "TEST.EVAL_PERIOD": "5", "TEST.IMS_PER_BATCH": "4", "SOLVER.AMP.ENABLED": "False"}
    o.update(extra)
    return [x for kv in o.items() for x in kv]


@pytest.fixture(scope="module")
def runs(data_root, tmp_path_factory):
    out = {}
    for name, config in CONFIGS.items():
        folder = str(tmp_path_factory.mktemp(name))
        out[name] = folder, run_cli("--config-file", config, *opts(data_root, folder))
    return out


@pytest.mark.parametrize("name", ["tfclip", "xtfclip"])
def test_memory_stage_then_training_with_every_loss(runs, name):
    folder, results = runs[name]
    assert set(results) == {"AGVPReID/A2G", "AGVPReID/G2A"}
    assert os.path.isfile(os.path.join(folder, "model_memory_final.pth"))
    lines = [json.loads(line) for line in open(os.path.join(folder, "metrics.json"))]
    loss_keys = {k for line in lines for k in line if k.startswith("loss_")}
    assert len(loss_keys) >= 4, loss_keys
    total = [line["total_loss"] for line in lines if "total_loss" in line]
    assert len(total) == 15 and sum(total[-3:]) < sum(total[:3]), total
    state = final_weights(folder)
    assert bool(state["clip_memory.ready"])


def test_xtfclip_interrupted_run_resumes_exactly(runs, data_root, tmp_path):
    weights = interrupt_then_resume(CONFIGS["xtfclip"], opts(data_root, str(tmp_path)),
                                    lambda t: t.stage.name == "train" and t.epoch == 2 and t.iter == 7)
    plain = final_weights(runs["xtfclip"][0])
    assert_same_weights(weights, plain)
    assert not torch.equal(plain["id_loss.supervise"], torch.full_like(plain["id_loss.supervise"],
                                                                      float(plain["id_loss.supervise"].flatten()[0])))


def test_two_gloo_processes_build_the_memory_and_train_identically(data_root, tmp_path):
    """The preparation-only memory stage and training under DDP (2 CPU processes): same weights on every rank."""
    from agreid.engine import launch

    result = tmp_path / "ddp.txt"
    launch(ddp_train_worker, 2, args=(opts(data_root, str(tmp_path / "out"), **{"SOLVER.MAX_EPOCH": "1"}),
                                       str(result), CONFIGS["tfclip"]), device="cpu")
    world, same, n, *diff = result.read_text().split()
    assert (world, same, n) == ("2", "1", "2"), f"tensors differing between ranks: {diff}"
    assert os.path.isfile(tmp_path / "out" / "model_memory_final.pth")
