"""TransReID (ViT baseline and stride-12 + SIE + JPM): reference parity, parameter counts, losses, training, loading.

The fixtures under ``fixtures/transreid/`` were produced by the reference code (damo-cv/TransReID) with tiny
models (depth 2, width 64, 2 heads, MLP ratio 2, 64×32 input; ImageNet head of 10 classes): its perturbed
random ``state_dict()`` (stored as fp16, every value exactly representable), uint8 input pixels, camera ids,
labels, and the reference eval feature and ID / triplet losses (drop-path 0, fp32, CPU).
"""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from engine_helpers import model_config

from agreid.modeling import build_model
from agreid.modeling.conversion import convert_reference_state
from agreid.modeling.meta_arch.transreid import shuffle_patches
from agreid.registries import META_ARCH_REGISTRY
from agreid.utils.checkpoint import Checkpointer, CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "transreid")
CONFIGS = os.path.join(REPO, "configs")
CASES = ("tiny_vit_base", "tiny_jpm_sie")
DATASET_CONFIGS = [(d, f) for d in ("LAGPeR", "AGReID", "AGReIDv2", "CARGO", "G2APS_ReID")
                   for f in ("vit_base.yml", "transreid.yml")]


def tiny_cfg(fx):
    base = "Base-TransReID-JPM-SIE.yml" if fx["jpm"] else "Base-TransReID-ViT.yml"
    return model_config(os.path.join(CONFIGS, base), MODEL__DEVICE="cpu",
                        MODEL__BACKBONE__VIT__EMBED_DIM=fx["embed_dim"], MODEL__BACKBONE__VIT__DEPTH=fx["depth"],
                        MODEL__BACKBONE__VIT__NUM_HEADS=fx["num_heads"],
                        MODEL__BACKBONE__VIT__MLP_RATIO=fx["mlp_ratio"], MODEL__BACKBONE__VIT__DROP_PATH=0.0,
                        MODEL__BACKBONE__VIT__STRIDE_SIZE=fx["stride"], MODEL__NUM_CAMERAS=fx["num_cameras"],
                        MODEL__NUM_VIEWS=1, MODEL__HEADS__NUM_CLASSES=fx["num_classes"],
                        INPUT__SIZE_TRAIN=list(fx["size"]), INPUT__SIZE_TEST=list(fx["size"]))


def load_fixture(name):
    return torch.load(os.path.join(FIXTURES, f"{name}.pt"), weights_only=True)


def reference_file(fx, path, prefix=""):
    """Write the fixture's reference state dict as the reference's train loop does (bare, fp32)."""
    torch.save({prefix + k: v.float() if v.is_floating_point() else v for k, v in fx["state_dict"].items()}, path)
    return path


def batch_of(fx):
    return {"images": (fx["pixels"].float() / 255 - 0.5) / 0.5, "targets": fx["targets"],
            "camids": fx["camids"], "views": fx["views"]}


@pytest.mark.parametrize("name", CASES)
def test_tiny_parity_with_reference(name, tmp_path):
    fx = load_fixture(name)
    model = build_model(tiny_cfg(fx))
    path = reference_file(fx, str(tmp_path / "transformer_120.pth"))
    Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])
    batch = batch_of(fx)
    model.eval()
    with torch.no_grad():
        feat = model(batch)
    ref = fx["eval_feature"]
    assert feat.shape == ref.shape == (8, 64 * (5 if fx["jpm"] else 1))
    assert (feat - ref).abs().max() <= 1e-4 * ref.abs().max()
    model.train()
    losses = model(batch)
    assert set(losses) == {"loss_cls", "loss_triplet"}
    assert losses["loss_cls"].item() == pytest.approx(fx["loss_id"].item(), rel=1e-5)
    assert losses["loss_triplet"].item() == pytest.approx(fx["loss_tri"].item(), rel=1e-5)


def test_module_prefixed_reference_file_loads(tmp_path):
    fx = load_fixture("tiny_jpm_sie")
    model = build_model(tiny_cfg(fx)).eval()
    path = reference_file(fx, str(tmp_path / "ddp.pth"), prefix="module.")
    Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])
    with torch.no_grad():
        feat = model(batch_of(fx))
    assert torch.allclose(feat, fx["eval_feature"], atol=1e-5)


@pytest.mark.parametrize("name,dead", [
    ("tiny_vit_base", {"base.fc.weight", "base.fc.bias"}),
    ("tiny_jpm_sie", {"base.fc.weight", "base.fc.bias", "base.norm.weight", "base.norm.bias"}),
])
def test_converter_renames_and_lists_dead_keys(name, dead):
    fx = load_fixture(name)
    model = build_model(tiny_cfg(fx))
    state = {k: v.float() for k, v in fx["state_dict"].items()}
    converted = convert_reference_state(state, model)
    assert converted is not None and converted.format == "TransReID"
    if fx["jpm"]:  # the reference's last backbone block never runs with JPM
        dead |= {k for k in state if k.startswith("base.blocks.1.")}
    assert set(converted.dead) == dead
    assert set(converted.state_dict) == set(model.state_dict())
    assert convert_reference_state(model.state_dict(), model) is None  # agreid keys: not this format


def test_wrong_jpm_setting_is_refused(tmp_path):
    fx = load_fixture("tiny_jpm_sie")
    cfg = tiny_cfg(fx)
    cfg.MODEL.TRANSREID.JPM = False
    model = build_model(cfg)
    with pytest.raises(CheckpointError):
        Checkpointer(model, str(tmp_path)).load(reference_file(fx, str(tmp_path / "f.pth")), checkpointables=[])


def meta_model(config, **overrides):
    cfg = model_config(os.path.join(CONFIGS, config), MODEL__HEADS__NUM_CLASSES=751, **overrides)
    with torch.device("meta"):
        return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)


@pytest.mark.parametrize("config,overrides,expected", [
    ("Base-TransReID-ViT.yml", {}, 86_324_736),  # reference 87,093,736 incl. the unused ImageNet fc
    ("Base-TransReID-JPM-SIE.yml", {"MODEL__NUM_CAMERAS": 6}, 95_794_944),  # reference 103,653,352
])
def test_full_size_parameter_counts(config, overrides, expected):
    model = meta_model(config, **overrides)
    assert sum(p.numel() for p in model.parameters()) == expected
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == [f"heads.{i}.bottleneck.bias" for i in range(len(model.heads))]


def test_full_size_feature_widths_and_grid():
    base, jpm = meta_model("Base-TransReID-ViT.yml"), meta_model("Base-TransReID-JPM-SIE.yml", MODEL__NUM_CAMERAS=6)
    assert base.backbone.pos_embed.shape == (1, 129, 768) and len(base.backbone.blocks) == 12
    assert jpm.backbone.pos_embed.shape == (1, 211, 768) and len(jpm.backbone.blocks) == 11
    assert jpm.backbone.sie_embed.shape == (6, 1, 768) and len(jpm.heads) == 5


def test_sie_needs_camera_count():
    with pytest.raises(ValueError, match="NUM_CAMERAS"):
        meta_model("Base-TransReID-JPM-SIE.yml")


def test_shuffle_patches_by_hand():
    tokens = torch.arange(11.0).view(1, 11, 1)  # class token 0, patches 1..10
    out = shuffle_patches(tokens, shift=5, groups=2).flatten().tolist()
    # shift: 5..10, 1..4; shuffle 2 groups: interleave the halves [5..9] and [10,1,2,3,4] (checked on the reference)
    assert out == [5, 10, 6, 1, 7, 2, 8, 3, 9, 4]
    odd = shuffle_patches(torch.arange(10.0).view(1, 10, 1), shift=5, groups=2).flatten().tolist()
    assert odd == [5, 1, 6, 2, 7, 3, 8, 4, 9, 3]  # 9 patches: the second-to-last (3) is appended


def test_jpm_loss_terms_and_weights():
    fx = load_fixture("tiny_jpm_sie")
    model = build_model(tiny_cfg(fx)).train()
    batch = batch_of(fx)
    torch.manual_seed(0)
    losses = model(batch)
    tokens = model.backbone(batch["images"], batch["camids"], batch["views"])
    outs = [h(t) for h, t in zip(model.heads, model.branch_tokens(tokens))]
    assert len(outs) == 5
    ce = [F.cross_entropy(o["cls_logits"], batch["targets"]) for o in outs]
    tri = [model.losses[1](o["features_before"], batch["targets"]) for o in outs]
    for got, terms in ((losses["loss_cls"], ce), (losses["loss_triplet"], tri)):
        want = 0.5 * terms[0] + 0.5 * sum(terms[1:]) / 4
        assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert model.losses[1].margin <= 0 and model.losses[0].epsilon == 0  # soft margin, no label smoothing


def test_sie_changes_features_and_checks_range():
    fx = load_fixture("tiny_jpm_sie")
    model = build_model(tiny_cfg(fx)).eval()
    batch = batch_of(fx)
    with torch.no_grad():
        a = model(batch)
        b = model(dict(batch, camids=(batch["camids"] + 1) % fx["num_cameras"]))
        assert not torch.allclose(a, b)
        with pytest.raises(ValueError, match="SIE"):
            model(dict(batch, camids=batch["camids"] + fx["num_cameras"]))


@pytest.mark.parametrize("dataset,config", DATASET_CONFIGS)
def test_dataset_configs(dataset, config):
    path = os.path.join(CONFIGS, dataset, config)
    cfg = model_config(path)
    assert cfg.DATASETS.NAMES == (dataset,) and all(t.startswith(dataset + "/") for t in cfg.DATASETS.TESTS)
    assert cfg.MODEL.META_ARCHITECTURE == "TransReID" and cfg.INPUT.NORM == "half"
    assert (cfg.MODEL.TRANSREID.JPM, cfg.MODEL.SIE.CAMERA, cfg.MODEL.BACKBONE.VIT.STRIDE_SIZE) == (
        (True, True, 12) if config == "transreid.yml" else (False, False, 16))
    solver = (cfg.SOLVER.OPT, cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_EPOCH, cfg.SOLVER.MOMENTUM,
              cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.WEIGHT_DECAY_BIAS, cfg.SOLVER.BIAS_LR_FACTOR)
    assert solver == ("SGD", 0.008, 64, 120, 0.9, 1e-4, 1e-4, 2.0)
    assert (cfg.DATALOADER.NUM_INSTANCE, cfg.INPUT.PADDING.SIZE, cfg.INPUT.REA.PROB, cfg.INPUT.FLIP.PROB) == (4, 10, 0.5, 0.5)
    assert (cfg.TEST.METRIC, cfg.TEST.FEAT_NORM, cfg.MODEL.HEADS.NECK_FEAT) == ("euclidean", True, "before")
    assert (cfg.SOLVER.SCHED, cfg.SOLVER.WARMUP_EPOCHS, cfg.SOLVER.ETA_MIN_LR) == ("TimmCosineLR", 5, 1.6e-5)


def test_training_loss_falls(tmp_path):
    from agreid.data import build_dataset
    from engine_helpers import DEMO_CONFIG, load_train_net, tiny_opts

    root = str(tmp_path / "data")
    build_dataset("AGDemo", root, num_train_ids=8, num_test_ids=6, images_per_view=4)
    out = str(tmp_path / "out")
    opts = tiny_opts(root, out, **{
        "MODEL.META_ARCHITECTURE": "TransReID", "MODEL.BACKBONE.NAME": "vit_transreid",
        "MODEL.BACKBONE.VIT.EMBED_DIM": "64", "MODEL.BACKBONE.VIT.DEPTH": "2", "MODEL.BACKBONE.VIT.NUM_HEADS": "2",
        "MODEL.BACKBONE.VIT.STRIDE_SIZE": "12", "MODEL.SIE.CAMERA": "True", "MODEL.NUM_CAMERAS": "7",
        "MODEL.TRANSREID.JPM": "True", "MODEL.HEADS.NECK_FEAT": "before", "MODEL.LOSSES.CE.EPSILON": "0.0",
        "MODEL.LOSSES.TRI.MARGIN": "0.0", "INPUT.NORM": "half", "SOLVER.OPT": "SGD", "SOLVER.BASE_LR": "0.01",
        "SOLVER.MAX_EPOCH": "6", "SOLVER.ITERS_PER_EPOCH": "4", "SOLVER.STEPS": "[5]", "SOLVER.LOG_PERIOD": "1",
        "TEST.EVAL_PERIOD": "6", "SOLVER.CHECKPOINT_PERIOD": "6", "TEST.METRIC": "euclidean",
        "TEST.FEAT_NORM": "True"})
    train_net = load_train_net()
    results = train_net.main(train_net.default_argument_parser().parse_args(["--config-file", DEMO_CONFIG, *opts]))
    assert set(results) == {"AGDemo/A2G", "AGDemo/G2A"}
    lines = [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]
    totals = [line["total_loss"] for line in lines if "total_loss" in line]
    assert len(totals) >= 12
    first, last = sum(totals[:4]) / 4, sum(totals[-4:]) / 4
    assert last < first, totals


def test_imagenet_pretrained_loading(tmp_path):
    """MODEL.PRETRAIN_PATH in timm's ViT layout: bilinear pos-embed resize (class row kept), head skipped, and
    the JPM branches copied from the loaded last block and norm (checked equal to the reference's load_param)."""
    from timm.models.vision_transformer import VisionTransformer

    from agreid.modeling.pretrained import resize_pos_embed

    torch.manual_seed(0)
    vit = VisionTransformer(img_size=224, patch_size=16, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0,
                            num_classes=10)
    state = {k: v + 0.01 * torch.randn_like(v) for k, v in vit.state_dict().items()}
    path = str(tmp_path / "jx_vit_tiny.pth")
    torch.save(state, path)
    fx = load_fixture("tiny_jpm_sie")
    cfg = tiny_cfg(fx)
    cfg.MODEL.PRETRAIN_PATH = path
    model = build_model(cfg)
    sd = model.state_dict()
    grid = model.backbone.patch_embed.grid_size
    assert torch.equal(sd["backbone.pos_embed"], resize_pos_embed(state["pos_embed"], grid, 1, mode="bilinear"))
    assert torch.equal(sd["backbone.pos_embed"][:, 0], state["pos_embed"][:, 0])
    assert torch.equal(sd["backbone.blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"])
    for branch in ("global_branch", "local_branch"):
        assert torch.equal(sd[f"{branch}.0.mlp.fc2.weight"], state["blocks.1.mlp.fc2.weight"])
        assert torch.equal(sd[f"{branch}.1.weight"], state["norm.weight"])
    assert not any(k.startswith("backbone.head") for k in sd)
