"""VDT (View-Decoupled Transformer): reference parity, parameter counts, loss terms, training, loading.

``fixtures/vdt/`` was produced by the reference code (wangshining681/SeCap-AGPReID @ df2d9dc7,
``Baseline_multiview`` with configs/LAGPeR/VDT.yml shrunk to depth 2, width 32, 2 heads, 64×32 input,
7 classes): its perturbed random weights saved as fast-reid's Checkpointer does (``reference_tiny.pth``,
``{"model": state_dict, ...}``), uint8 input pixels, labels, agreid view codes, and the reference eval
feature, train-mode losses and BN buffers after one train forward (drop-path 0, fp32, CPU).
"""
import json
import os

import pytest
import torch

from engine_helpers import model_config

from agreid.modeling import build_model
from agreid.modeling.conversion import convert_reference_state
from agreid.registries import META_ARCH_REGISTRY
from agreid.utils.checkpoint import Checkpointer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
DATASETS = ("LAGPeR", "AGReID", "AGReIDv2", "CARGO", "G2APS_ReID")


def load_fixture(method):
    folder = os.path.join(REPO, "tests", "fixtures", method)
    return (torch.load(os.path.join(folder, "expected_tiny.pth"), weights_only=True),
            os.path.join(folder, "reference_tiny.pth"))


def tiny_cfg(fx, base, **overrides):
    m = fx["meta"]
    opts = dict(MODEL__DEVICE="cpu", MODEL__BACKBONE__VIT__EMBED_DIM=m["embed_dim"],
                MODEL__BACKBONE__VIT__DEPTH=m["depth"], MODEL__BACKBONE__VIT__NUM_HEADS=m["num_heads"],
                MODEL__BACKBONE__VIT__STRIDE_SIZE=m["stride"], MODEL__BACKBONE__VIT__DROP_PATH=0.0,
                MODEL__HEADS__NUM_CLASSES=m["num_classes"], MODEL__SECAP__VIEW_LAMBDA=m["view_lambda"],
                INPUT__SIZE_TRAIN=list(m["size"]), INPUT__SIZE_TEST=list(m["size"]))
    if m["prompt_len"]:
        opts["MODEL__SECAP__PROMPT_LEN"] = m["prompt_len"]
    opts.update(overrides)
    return model_config(os.path.join(CONFIGS, base), **opts)


def batch_of(fx):
    """The fixture batch as agreid's loader gives it: INPUT.NORM half, agreid view codes."""
    return {"images": fx["images_u8"].float() / 127.5 - 1.0, "targets": fx["targets"], "views": fx["views"],
            "camids": torch.zeros_like(fx["targets"])}


def check_parity(fx, model):
    """Eval feature, every train loss and the BN buffers after one train forward match the reference."""
    batch = batch_of(fx)
    model.eval()
    with torch.no_grad():
        feat = model(batch)
    ref = fx["eval"]
    assert feat.shape == ref.shape
    assert (feat - ref).abs().max() <= 1e-4 * ref.abs().max()
    model.train()
    with torch.no_grad():
        losses = model(batch)
    assert set(losses) == set(fx["losses"])
    for k, v in fx["losses"].items():
        assert losses[k].item() == pytest.approx(v, rel=1e-4), k
    sd = model.state_dict()
    for k, v in fx["buffers_after_train"].items():  # heads.bottleneck.0.running_mean -> heads.bottleneck.running_mean
        mine = sd[k.replace("bottleneck.0.", "bottleneck.")]
        assert torch.allclose(mine.double(), v.double(), atol=1e-5), k


def meta_model(config, **overrides):
    cfg = model_config(os.path.join(CONFIGS, config), **overrides)
    with torch.device("meta"):
        return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)


# ---------------------------------------------------------------------------------------------- tests


def test_tiny_parity_with_reference(tmp_path):
    fx, path = load_fixture("vdt")
    model = build_model(tiny_cfg(fx, "Base-VDT.yml"))
    Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])
    check_parity(fx, model)


def test_converter_renames_heads_and_has_no_dead_keys():
    fx, path = load_fixture("vdt")
    model = build_model(tiny_cfg(fx, "Base-VDT.yml"))
    state = torch.load(path, weights_only=True)["model"]
    converted = convert_reference_state(state, model)
    assert converted is not None and converted.format == "fastreid_vdt" and converted.dead == []
    assert set(converted.state_dict) == set(model.state_dict())
    assert converted.state_dict["heads.classifier.weight"] is state["heads.weight"]
    assert convert_reference_state(model.state_dict(), model) is None


def test_full_size_parameter_count():
    model = meta_model("LAGPeR/vdt.yml", MODEL__HEADS__NUM_CLASSES=2708)
    assert sum(p.numel() for p in model.parameters()) == 87_832_320  # the reference's, nothing dead
    assert model.backbone.pos_embed.shape == (1, 130, 768) and len(model.backbone.blocks) == 12
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["heads.bottleneck.bias", "view_heads.bottleneck.bias"]


def test_loss_terms_weights_and_switches():
    fx, _ = load_fixture("vdt")
    batch = batch_of(fx)
    torch.manual_seed(0)
    model = build_model(tiny_cfg(fx, "Base-VDT.yml", MODEL__SECAP__VIEW_LAMBDA=1.0)).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        base = model(batch)
    assert set(base) == {"loss_cls_id", "loss_cls_view", "loss_triplet_id", "loss_oreg"}
    assert int(model.heads.bottleneck.num_batches_tracked) == 1 + int(state["heads.bottleneck.num_batches_tracked"]) + 1
    for key, value in [("MODEL__SECAP__VIEW_LAMBDA", 0.5), ("MODEL__SECAP__VIEW_ID", False),
                       ("MODEL__SECAP__VIEW_OREG", False), ("MODEL__SECAP__HEADS_TWICE", False)]:
        other = build_model(tiny_cfg(fx, "Base-VDT.yml", **{key: value})).train()
        other.load_state_dict(state)
        with torch.no_grad():
            losses = other(batch)
        if key.endswith("LAMBDA"):
            for k in ("loss_cls_view", "loss_oreg"):
                assert losses[k].item() == pytest.approx(0.5 * base[k].item(), rel=1e-5)
        elif key.endswith("VIEW_ID"):
            assert "loss_cls_view" not in losses and "loss_oreg" in losses
        elif key.endswith("VIEW_OREG"):
            assert "loss_oreg" not in losses and "loss_cls_view" in losses
        else:  # the head runs once: its BN has seen one batch
            assert int(other.heads.bottleneck.num_batches_tracked) == 1
            assert losses["loss_cls_id"].item() == pytest.approx(base["loss_cls_id"].item(), rel=1e-6)


def test_input_untouched_and_view_labels():
    from agreid.modeling.meta_arch.vdt import view_labels

    assert view_labels(torch.tensor([0, 1, 2, 3])).tolist() == [1, 0, 0, 0]  # aerial -> 1 as in the reference
    fx, _ = load_fixture("vdt")
    model = build_model(tiny_cfg(fx, "Base-VDT.yml")).eval()
    batch = batch_of(fx)
    before = batch["images"].clone()
    with torch.no_grad():
        model(batch)
    assert torch.equal(batch["images"], before)


@pytest.mark.parametrize("dataset", DATASETS)
def test_dataset_configs(dataset):
    path = os.path.join(CONFIGS, dataset, "vdt.yml")
    cfg = model_config(path)
    assert cfg.DATASETS.NAMES == (dataset,) and all(t.startswith(dataset + "/") for t in cfg.DATASETS.TESTS)
    assert (cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.VIT.STRIDE_SIZE) == (
        "VDT", "vit_multiview", 16)
    assert (cfg.INPUT.NORM, cfg.MODEL.SECAP.VIEW_LAMBDA, cfg.MODEL.LOSSES.TRI.MARGIN) == ("half", 0.001, 0.0)
    solver = (cfg.SOLVER.OPT, cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_EPOCH)
    assert solver == ("SGD", 0.008, 128, 120)
    assert (cfg.SOLVER.SCHED, cfg.SOLVER.WARMUP_ITERS, cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE) == (
        "WarmupCosineEpochLR", 2000, "norm_per_group")


def train_tiny(tmp_path, meta_arch, backbone, **extra):
    """Train a tiny model on a miniature AGDemo through tools/train_net.py; return the logged total losses."""
    from agreid.data import build_dataset
    from engine_helpers import DEMO_CONFIG, load_train_net, tiny_opts

    root = str(tmp_path / "data")
    build_dataset("AGDemo", root, num_train_ids=8, num_test_ids=6, images_per_view=4)
    out = str(tmp_path / "out")
    opts = tiny_opts(root, out, **{
        "MODEL.META_ARCHITECTURE": meta_arch, "MODEL.BACKBONE.NAME": backbone,
        "MODEL.BACKBONE.VIT.EMBED_DIM": "32", "MODEL.BACKBONE.VIT.DEPTH": "2", "MODEL.BACKBONE.VIT.NUM_HEADS": "2",
        "MODEL.LOSSES.CE.EPSILON": "0.0", "MODEL.LOSSES.TRI.MARGIN": "0.0", "INPUT.NORM": "half",
        "MODEL.SECAP.VIEW_LAMBDA": "0.1", "SOLVER.OPT": "SGD", "SOLVER.BASE_LR": "0.02",
        "SOLVER.MAX_EPOCH": "5", "SOLVER.ITERS_PER_EPOCH": "4", "SOLVER.STEPS": "[4]", "SOLVER.LOG_PERIOD": "1",
        "TEST.EVAL_PERIOD": "5", "SOLVER.CHECKPOINT_PERIOD": "5", **extra})
    train_net = load_train_net()
    results = train_net.main(train_net.default_argument_parser().parse_args(["--config-file", DEMO_CONFIG, *opts]))
    assert set(results) == {"AGDemo/A2G", "AGDemo/G2A"}
    lines = [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]
    return [line["total_loss"] for line in lines if "total_loss" in line], out


def test_training_loss_falls(tmp_path):
    totals, out = train_tiny(tmp_path, "VDT", "vit_multiview")
    assert len(totals) >= 12
    assert sum(totals[-4:]) / 4 < sum(totals[:4]) / 4, totals
