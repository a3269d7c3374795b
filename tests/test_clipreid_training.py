"""CLIP-ReID from the command line: a tiny CLIP (2 layers, width 64) runs both stages of configs/Base-CLIPReID.yml
on a generated data set with falling losses, caches stage 1's image features once, and a run interrupted inside
either stage resumes to the weights of an uninterrupted one."""
import json
import os

import pytest

from engine_helpers import (REPO, assert_same_weights, ddp_train_worker, final_weights, interrupt_then_resume, run_cli,
                            tiny_opts)

from agreid.utils.checkpoint import load_checkpoint_file

CONFIG = os.path.join(REPO, "configs", "Base-CLIPReID.yml")
TINY_CLIP = {"MODEL.PRETRAIN_PATH": "", "MODEL.CLIP.EMBED_DIM": "32", "MODEL.CLIP.VISION_LAYERS": "[2]",
             "MODEL.CLIP.VISION_WIDTH": "64", "MODEL.CLIP.VISION_PATCH_SIZE": "8", "MODEL.CLIP.VISION_GRID": "4",
             "MODEL.CLIP.STRIDE_SIZE": "8", "MODEL.CLIP.TEXT_WIDTH": "64", "MODEL.CLIP.TEXT_LAYERS": "2"}


def clip_opts(data_root, out, **extra):
    opts = {**TINY_CLIP, "DATASETS.NAMES": '("AGDemo",)', "DATASETS.TESTS": '("AGDemo",)', "SEED": "0",
            "SOLVER.STAGE1.MAX_EPOCH": "4", "SOLVER.STAGE1.IMS_PER_BATCH": "4096", "SOLVER.STAGE1.WARMUP_EPOCHS": "1",
            "SOLVER.STAGE1.BASE_LR": "0.001", "SOLVER.STAGE1.CHECKPOINT_PERIOD": "1", "SOLVER.STAGE1.LOG_PERIOD": "1",
            "SOLVER.BASE_LR": "0.001", "SOLVER.STEPS": "[2]", "SOLVER.WARMUP_EPOCHS": "1", "SOLVER.WARMUP_ITERS": "0",
            "SOLVER.LOG_PERIOD": "1", "SOLVER.ITERS_PER_EPOCH": "4", "TEST.EVAL_PERIOD": "3", "SOLVER.AMP.ENABLED": "False"}
    opts.update(extra)
    return tiny_opts(data_root, out, **opts)


def losses(path, key):
    return [line[key] for line in map(json.loads, open(path)) if key in line]


@pytest.fixture(scope="module")
def plain_run(data_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("clipreid"))
    results = run_cli("--config-file", CONFIG, *clip_opts(data_root, out))
    return out, results


def test_both_stages_train_with_falling_losses(plain_run):
    out, results = plain_run
    assert set(results) == {"AGDemo/A2G", "AGDemo/G2A"}
    assert os.path.isfile(os.path.join(out, "cache", "clip_image_features.pth"))
    for name in ("model_prompt_final.pth", "model_final.pth", "metrics_prompt.json", "metrics.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    prompt = os.path.join(out, "metrics_prompt.json")
    for key in ("loss_i2t", "loss_t2i"):
        values = losses(prompt, key)
        assert len(values) == 4 and values[-1] < values[0], (key, values)  # one full batch per epoch
    image = os.path.join(out, "metrics.json")
    total = losses(image, "total_loss")
    assert len(total) >= 6 and sum(total[-3:]) < sum(total[:3]), total
    keys = set().union(*[set(line) for line in map(json.loads, open(image))])
    assert {k for k in keys if k.startswith("loss_")} >= {"loss_i2t"} and len([k for k in keys if k.startswith("loss_")]) >= 3
    # stage 1 changed only the prompt learner; stage 2 left it (and the text encoder) untouched
    p = load_checkpoint_file(os.path.join(out, "model_prompt_final.pth"))["model"]
    f = load_checkpoint_file(os.path.join(out, "model_final.pth"))["model"]
    frozen = [k for k in p if "prompt_learner" in k or "text" in k.lower()]
    assert frozen and all((p[k] == f[k]).all() for k in frozen)
    assert any(not (p[k] == f[k]).all() for k in p if k not in frozen and p[k].is_floating_point())


@pytest.mark.parametrize("stage", ["prompt", "image"])
def test_interrupted_stage_resumes_to_identical_weights(plain_run, data_root, tmp_path, stage):
    weights = interrupt_then_resume(CONFIG, clip_opts(data_root, str(tmp_path)),
                                    lambda t: t.stage.name == stage and t.epoch == 1)
    assert_same_weights(weights, final_weights(plain_run[0]))


def test_two_gloo_processes_run_both_stages_identically(data_root, tmp_path):
    """Both stages under DDP (2 CPU processes): stage 1's cached features sharded over the ranks, stage 2 on the
    identity sampler's rank slices; every rank ends with the same weights."""
    from agreid.engine import launch

    result = tmp_path / "ddp.txt"
    opts = clip_opts(data_root, str(tmp_path / "out"), **{"SOLVER.STAGE1.MAX_EPOCH": "2", "SOLVER.MAX_EPOCH": "2",
                                                           "TEST.EVAL_PERIOD": "2"})
    launch(ddp_train_worker, 2, args=(opts, str(result), CONFIG), device="cpu")
    world, same, n, *diff = result.read_text().split()
    assert (world, same, n) == ("2", "1", "2"), f"tensors differing between ranks: {diff}"
    assert os.path.isfile(tmp_path / "out" / "model_prompt_final.pth")
    assert os.path.isfile(tmp_path / "out" / "model_final.pth")
