"""SeCap: reference parity, parameter counts, dead keys, prompt modules, pretrained loading, training.

``fixtures/secap/`` was produced by the reference code (wangshining681/SeCap-AGPReID @ df2d9dc7,
``Baseline_multiview_SeCap`` with configs/LAGPeR/secap.yml shrunk to depth 2, width 32, 2 heads, 6 prompts,
64×32 input, 7 classes); see ``test_vdt.py`` for what the files hold.
"""
import os

import pytest
import torch
from test_vdt import CONFIGS, DATASETS, batch_of, check_parity, load_fixture, meta_model, model_config, tiny_cfg, \
    train_tiny

from agreid.modeling import build_model
from agreid.modeling.backbones.vit_multiview import MultiViewViT, load_multiview_pretrained, secap_pos_embed
from agreid.modeling.conversion import convert_reference_state
from agreid.modeling.pretrained import resize_pos_embed
from agreid.utils.checkpoint import Checkpointer

BASE = "Base-SeCap.yml"


def test_tiny_parity_with_reference(tmp_path):
    fx, path = load_fixture("secap")
    model = build_model(tiny_cfg(fx, BASE))
    Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])
    check_parity(fx, model)


def test_converter_maps_b1_and_lists_dead_keys():
    fx, path = load_fixture("secap")
    model = build_model(tiny_cfg(fx, BASE))
    state = torch.load(path, weights_only=True)["model"]
    converted = convert_reference_state(state, model)
    assert converted is not None and converted.format == "fastreid_secap"
    dead = {k for k in state if k.startswith(("backbone.base.blocks.1.", "backbone.base.norm.", "backbone.prm.attn2."))}
    assert set(converted.dead) == dead | {"backbone.lfrm.out_token"}
    assert set(converted.state_dict) == set(model.state_dict())
    assert converted.state_dict["backbone.blocks.1.attn.qkv.weight"] is state["backbone.b1.0.attn.qkv.weight"]
    assert converted.state_dict["backbone.norm.weight"] is state["backbone.b1.1.weight"]
    assert converted.state_dict["local_heads.bottleneck.running_var"] is state["local_heads.bottleneck.0.running_var"]
    assert convert_reference_state(model.state_dict(), model) is None


@pytest.mark.parametrize("config,classes,used,file_total,tokens", [
    ("LAGPeR/secap.yml", 2708, 125_508_864, 134_959_104, 128),
    ("AGReID/secap.yml", 199, 121_830_144, 131_280_384, 210),
])
def test_full_size_parameter_counts(config, classes, used, file_total, tokens):
    model = meta_model(config, MODEL__HEADS__NUM_CLASSES=classes)
    assert sum(p.numel() for p in model.parameters()) == used
    dim = 768  # the reference file adds its dead tensors: block 11 + final LN of the base, prm.attn2, lfrm.out_token
    dead = sum(p.numel() for p in model.backbone.blocks[-1].parameters()) + 2 * dim + (4 * dim * dim + dim) + dim
    assert used + dead == file_total
    assert model.image_pe.shape == (1, tokens, dim) and model.backbone.pos_embed.shape == (1, tokens + 2, dim)
    assert model.prompt.shape[1] == model_config(os.path.join(CONFIGS, config)).MODEL.SECAP.PROMPT_LEN


def test_eval_feature_is_two_post_bn_parts(tmp_path):
    fx, path = load_fixture("secap")
    model = build_model(tiny_cfg(fx, BASE)).eval()
    Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])
    batch = batch_of(fx)
    with torch.no_grad():
        feat = model(batch)
        tokens = model.backbone(batch["images"])
        inv = tokens.global_feat - tokens.view_feat
        local = model.local_feature(tokens, inv)
    assert torch.allclose(feat[:, :32], model.heads.bottleneck(inv), atol=1e-6)
    assert torch.allclose(feat[:, 32:], model.local_heads.bottleneck(local), atol=1e-6)


def test_prm_switch_and_loss_terms():
    fx, _ = load_fixture("secap")
    batch = batch_of(fx)
    torch.manual_seed(0)
    model = build_model(tiny_cfg(fx, BASE)).train()
    with torch.no_grad():
        losses = model(batch)
    assert set(losses) == {"loss_cls_id", "loss_cls_local", "loss_cls_view", "loss_triplet_id",
                           "loss_triplet_local", "loss_oreg"}
    no_prm = build_model(tiny_cfg(fx, BASE, MODEL__SECAP__USE_PRM=False)).eval()
    no_prm.load_state_dict(model.state_dict())
    model.eval()
    with torch.no_grad():
        a, b = model(batch), no_prm(batch)
    assert torch.allclose(a[:, :32], b[:, :32]) and not torch.allclose(a[:, 32:], b[:, 32:])


def test_imagenet_pos_embed_keeps_two_prefix_rows(tmp_path):
    torch.manual_seed(0)
    vit = MultiViewViT(img_size=(64, 32), patch_size=16, stride_size=12, embed_dim=32, depth=2, num_heads=2,
                       layout="secap")
    imagenet = {"cls_token": torch.randn(1, 1, 32), "pos_embed": torch.randn(1, 1 + 14 * 14, 32),
                "patch_embed.proj.weight": torch.randn(32, 3, 16, 16), "head.weight": torch.randn(10, 32),
                "blocks.1.norm1.weight": torch.randn(32), "norm.bias": torch.randn(32)}
    path = str(tmp_path / "jx_vit.pth")
    torch.save(imagenet, path)
    report = load_multiview_pretrained(vit, path)
    pos = vit.pos_embed.detach()
    grid = vit.patch_embed.grid_size
    assert pos.shape == (1, 2 + grid[0] * grid[1], 32) and "pos_embed" in report.adapted
    assert torch.equal(pos[:, :2], imagenet["pos_embed"][:, :2])  # CLS row, and VIEW from the first grid row
    want = resize_pos_embed(imagenet["pos_embed"][:, 1:], grid, 0, mode="bilinear")
    assert torch.allclose(pos[:, 2:], want) and torch.allclose(pos, secap_pos_embed(imagenet["pos_embed"], grid))
    assert torch.equal(vit.blocks[1].norm1.weight.detach(), imagenet["blocks.1.norm1.weight"])  # = the reference's b1
    assert "head.weight" not in report.unexpected


@pytest.mark.parametrize("dataset", DATASETS)
def test_dataset_configs(dataset):
    path = os.path.join(CONFIGS, dataset, "secap.yml")
    cfg = model_config(path)
    assert cfg.DATASETS.NAMES == (dataset,) and all(t.startswith(dataset + "/") for t in cfg.DATASETS.TESTS)
    stride, prompts, lam = {"LAGPeR": (16, 64, 0.001), "AGReID": (12, 128, 10.0)}.get(dataset, (12, 64, 0.001))
    assert (cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.NAME) == ("SeCap", "vit_multiview_secap")
    assert (cfg.MODEL.BACKBONE.VIT.STRIDE_SIZE, cfg.MODEL.SECAP.PROMPT_LEN, cfg.MODEL.SECAP.VIEW_LAMBDA) == (
        stride, prompts, lam)
    assert (cfg.TEST.IMS_PER_BATCH, cfg.TEST.METRIC, cfg.INPUT.NORM) == (384, "cosine", "half")
    if dataset == "CARGO":
        assert {"CARGO/A2G_secap", "CARGO/G2A_secap"} <= set(cfg.DATASETS.TESTS)
    assert (cfg.SOLVER.SCHED, cfg.SOLVER.WEIGHT_DECAY_NORM, cfg.SOLVER.CLIP_GRADIENTS.MAX_NORM) == (
        "WarmupCosineEpochLR", 0.0005, 5.0)


def test_training_loss_falls(tmp_path):
    totals, _ = train_tiny(tmp_path, "SeCap", "vit_multiview_secap", **{"MODEL.SECAP.PROMPT_LEN": "4"})
    assert len(totals) >= 12
    assert sum(totals[-4:]) / 4 < sum(totals[:4]) / 4, totals
