"""AGW (two-stream visible-infrared and single-modality): reference parity, checkpoints, layers and losses.

The fixtures under ``fixtures/agw/`` were produced by the reference code (mangye16/Cross-Modal-Re-ID-baseline
``embed_net`` and mangye16/ReID-Survey ``Baseline`` with ``resnet50_nl``), with every channel count of 64 and
more divided by 32 (so layer4 gives 64 channels; the depth, non-local positions and all code paths are the
reference's), 6 classes and 64×32 inputs: their perturbed random ``state_dict()`` (fp16, every value exactly
representable; the cross-modal one with the unused ResNet copies), uint8 pixels, labels, the reference's eval
features and train losses (fp32, CPU).
"""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine_helpers import model_config

from agreid.modeling import build_model
from agreid.modeling.conversion import convert_reference_state
from agreid.modeling.heads.pooling import build_pooling
from agreid.modeling.layers.non_local import NonLocalBlock
from agreid.modeling.losses import CenterLoss, WeightedRegularizedTriplet
from agreid.registries import LOSS_REGISTRY, META_ARCH_REGISTRY
from agreid.utils.checkpoint import Checkpointer, CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "agw")
CONFIGS = os.path.join(REPO, "configs")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_fixture(name):
    return torch.load(os.path.join(FIXTURES, f"{name}.pt"), weights_only=True)


def tiny_cfg(config, fx, **extra):
    return model_config(os.path.join(CONFIGS, config), MODEL__DEVICE="cpu", MODEL__AGW__BASE_WIDTH=fx["base_width"],
                        MODEL__HEADS__NUM_CLASSES=fx["num_classes"], MODEL__LOSSES__CENTER__FEAT_DIM=64, **extra)


def fp32_state(fx):
    return {k: v.float() if v.is_floating_point() else v for k, v in fx["state_dict"].items()}


def images(pixels):
    return (pixels.float() / 255 - MEAN) / STD


def rel_diff(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def cross_modal_model(tmp_path, **extra):
    """The tiny two-stream model loaded from the fixture's checkpoint as train.py saves it (``net`` + epoch)."""
    fx = load_fixture("cross_modal_tiny")
    model = build_model(tiny_cfg("Base-AGW-VI.yml", fx, **extra))
    path = str(tmp_path / "sysu_agw_net.pth")
    torch.save({"net": fp32_state(fx), "epoch": 10}, path)
    Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])
    return model, fx


def test_tiny_cross_modal_parity_with_reference(tmp_path):
    model, fx = cross_modal_model(tmp_path)
    vis, ir = images(fx["vis_pixels"]), images(fx["ir_pixels"])
    n = len(vis)
    model.eval()
    with torch.no_grad():
        a_v = model({"images": vis, "modalities": torch.zeros(n, dtype=torch.long)})
        a_t = model({"images": ir, "modalities": torch.ones(n, dtype=torch.long)})
        mixed = model({"images": torch.cat([ir[:2], vis, ir[2:]]),
                       "modalities": torch.tensor([1, 1] + [0] * n + [1] * (n - 2))})
    assert set(a_v) == {"pool", "bn"} and a_v["bn"].shape == (n, 64)
    for ours, ref in ((a_v["pool"], fx["vis_pool"]), (a_v["bn"], fx["vis_bn"]), (a_t["pool"], fx["ir_pool"]),
                      (a_t["bn"], fx["ir_bn"])):
        assert rel_diff(ours, ref) <= 1e-4
        assert torch.allclose(ours.norm(dim=1), torch.ones(n), atol=1e-5)
    # each image of a mixed batch goes through its own stem and keeps its row
    assert rel_diff(mixed["bn"], torch.cat([fx["ir_bn"][:2], fx["vis_bn"], fx["ir_bn"][2:]])) <= 1e-4
    # train mode: agreid's batch is per identity K visible then K infrared; the reference's visible then thermal
    k = 2
    order = torch.cat([torch.cat([torch.arange(i * k, i * k + k), n + torch.arange(i * k, i * k + k)])
                       for i in range(n // k)])
    batch = {"images": torch.cat([vis, ir])[order], "targets": torch.cat([fx["targets"]] * 2)[order],
             "modalities": torch.cat([torch.zeros(n), torch.ones(n)]).long()[order]}
    model.train()
    losses = model(batch)
    assert set(losses) == {"loss_cls", "loss_wrt"}
    assert losses["loss_cls"].item() == pytest.approx(fx["loss_id"].item(), rel=1e-5)
    assert losses["loss_wrt"].item() == pytest.approx(fx["loss_wrt"].item(), rel=1e-5)


def test_tiny_reid_survey_parity_with_reference(tmp_path):
    fx = load_fixture("reid_survey_tiny")
    model = build_model(tiny_cfg("Base-AGW.yml", fx))
    path = str(tmp_path / "resnet50_nl_state_120.pth")
    torch.save(fp32_state(fx), path)
    Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])
    x = images(fx["pixels"])
    model.eval()
    with torch.no_grad():
        feat = model({"images": x})
    assert feat.shape == fx["bn_feature"].shape and rel_diff(feat, fx["bn_feature"]) <= 1e-4
    with torch.no_grad():
        model.losses[2].centers.copy_(fx["centers"].float())
    model.train()
    losses = model({"images": x, "targets": fx["targets"]})
    assert set(losses) == {"loss_cls", "loss_wrt", "loss_center"}
    assert losses["loss_cls"].item() == pytest.approx(fx["loss_id"].item(), rel=1e-5)
    assert losses["loss_wrt"].item() == pytest.approx(fx["loss_wrt"].item(), rel=1e-5)
    assert losses["loss_center"].item() == pytest.approx(5e-4 * fx["loss_center"].item(), rel=1e-5)


def test_converters_rename_and_list_dead_keys():
    fx = load_fixture("cross_modal_tiny")
    model = build_model(tiny_cfg("Base-AGW-VI.yml", fx))
    state = fp32_state(fx)
    converted = convert_reference_state(state, model)
    assert converted.format == "agw_cross_modal"
    assert set(converted.state_dict) == set(model.state_dict())
    dead = set(converted.dead)
    assert dead == {k for k in state if k.startswith(("visible_module.visible.layer", "thermal_module.thermal.layer",
                                                      "base_resnet.base.conv1", "base_resnet.base.bn1"))}
    assert converted.state_dict["backbone.non_local2.1.g.weight"] is state["NL_2.1.g.0.weight"]
    assert converted.state_dict["backbone.non_local3.2.out_bn.weight"] is state["NL_3.2.W.1.weight"]
    assert converted.state_dict["backbone.stems.1.conv1.weight"] is state["thermal_module.thermal.conv1.weight"]
    assert convert_reference_state(model.state_dict(), model) is None

    fs = load_fixture("reid_survey_tiny")
    single = build_model(tiny_cfg("Base-AGW.yml", fs))
    survey = convert_reference_state(fp32_state(fs), single)
    assert survey.format == "agw_reid_survey" and not survey.dead
    assert set(survey.state_dict) == set(single.state_dict())
    assert survey.state_dict["heads.pool.p"].shape == () and fs["state_dict"]["global_pool.p"].shape == (1,)
    assert survey.state_dict["backbone.non_local3.0.g.bias"] is not None
    assert any("center_param" in note for note in survey.notes)


@pytest.mark.parametrize("config,fixture,overrides,message", [
    ("Base-AGW.yml", "cross_modal_tiny", {}, "TWO_STREAM True"),
    ("Base-AGW-VI.yml", "reid_survey_tiny", {}, "TWO_STREAM False"),
    ("Base-AGW.yml", "reid_survey_tiny", {"MODEL__AGW__STEM_RELU": True}, "STEM_RELU False"),
    ("Base-AGW.yml", "reid_survey_tiny", {"MODEL__HEADS__POOL": "gem"}, "gem_learn"),
])
def test_wrong_settings_for_a_reference_file_are_refused(tmp_path, config, fixture, overrides, message):
    fx = load_fixture(fixture)
    model = build_model(tiny_cfg(config, fx, **overrides))
    path = str(tmp_path / "ref.pth")
    torch.save(fp32_state(fx), path)
    with pytest.raises(CheckpointError, match=message):
        Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])


def test_reference_files_with_numpy_values_get_a_clear_error(tmp_path):
    """train.py saves numpy cmc / mAP beside ``net``: weights-only loading refuses it with the reason."""
    fx = load_fixture("cross_modal_tiny")
    model = build_model(tiny_cfg("Base-AGW-VI.yml", fx))
    path = str(tmp_path / "sysu_agw_p4_n8_lr_0.1_seed_0_best.t")
    torch.save({"net": fp32_state(fx), "cmc": np.zeros(3, dtype=np.float32), "mAP": np.float64(0.5),
                "epoch": 4}, path)
    with pytest.raises(CheckpointError, match="pickled Python objects.*numpy"):
        Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])


def _meta_model(config, num_classes):
    cfg = model_config(os.path.join(CONFIGS, config), MODEL__HEADS__NUM_CLASSES=num_classes)
    with torch.device("meta"):
        return META_ARCH_REGISTRY.get("AGW")(cfg)


def test_full_size_parameter_counts():
    vi = _meta_model("Base-AGW-VI.yml", 395)  # reference file: 71,365,839 with the unused ResNet copies
    assert sum(p.numel() for p in vi.parameters()) == 24_359_311
    single = _meta_model("Base-AGW.yml", 751)  # the center-loss centres live in the reference's criterion
    assert sum(p.numel() for n, p in single.named_parameters() if not n.startswith("losses.")) == 25_078_864
    assert [n for n, p in vi.named_parameters() if not p.requires_grad] == ["heads.bottleneck.bias"]
    assert vi.backbone.out_dim == 2048 and len(vi.backbone.stems) == 2 and len(single.backbone.stems) == 1
    assert len(vi.backbone.non_local2) == 2 and len(vi.backbone.non_local3) == 3
    assert vi.backbone.non_local3[0].inner_channels == 1
    assert vi.backbone.layer4[0].conv2.stride == (1, 1)
    paper = model_config(os.path.join(CONFIGS, "Base-AGW-VI.yml"), MODEL__AGW__NL_REDUCTION=2)
    with torch.device("meta"):
        assert META_ARCH_REGISTRY.get("AGW")(paper).backbone.non_local3[0].inner_channels == 512


def test_non_local_block_maths():
    torch.manual_seed(0)
    block = NonLocalBlock(8, reduction=0).eval()
    x = torch.randn(2, 8, 3, 5)
    assert torch.equal(block(x), x)  # zero-initialised output BN: a fresh block is the identity
    torch.nn.init.normal_(block.out_bn.weight)
    wide = NonLocalBlock(8, reduction=2).eval()
    wide.load_state_dict({k: torch.randn_like(v) if v.is_floating_point() else v
                          for k, v in wide.state_dict().items()})
    wide.out_bn.running_var.abs_()
    for b in (block, wide):  # the associative shortcut equals (θᵀφ / N) g
        theta, phi, g = (m(x).flatten(2) for m in (b.theta, b.phi, b.g))
        y = (theta.transpose(1, 2) @ phi / 15) @ g.transpose(1, 2)
        expected = x + b.out_bn(b.out_conv(y.transpose(1, 2).reshape(2, b.inner_channels, 3, 5)))
        assert torch.allclose(b(x), expected, atol=1e-5)


def test_gem_formulas():
    x = torch.rand(2, 3, 4, 5) * torch.tensor([1.0, 0.0, 2.0]).view(1, 3, 1, 1)
    add = build_pooling("gem_add_eps", 3.0)
    assert torch.allclose(add(x), (x.flatten(2).pow(3).mean(-1) + 1e-12).pow(1 / 3))
    assert add(x)[:, 1].abs().max() < 1e-3 and not list(add.parameters()) and not add.state_dict()
    learn = build_pooling("gem_learn", 3.0)
    assert torch.allclose(learn(x), x.flatten(2).clamp(min=1e-6).pow(3).mean(-1).pow(1 / 3))
    assert learn.p.requires_grad and set(learn.state_dict()) == {"p"}


def test_wrt_against_its_formula_by_hand():
    """Two identities of two images in one dimension: distances by hand, the references' weights."""
    feats = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    targets = torch.tensor([0, 0, 1, 1])
    loss = WeightedRegularizedTriplet()(feats, targets)
    d = (feats - feats.t()).abs().clamp(min=1e-6)  # sqrt(clamp(0, 1e-12)) on the diagonal
    expected = []
    for i in range(4):
        pos, neg = targets == targets[i], targets != targets[i]
        wp = torch.exp(d[i][pos] - d[i][pos].max())
        dp = (wp * d[i][pos]).sum() / (wp.sum() + 1e-6)  # the anchor is among its positives
        wn = torch.exp(-d[i][neg])  # shift 0, not the largest -d: the references' quirk
        dn = (wn * d[i][neg]).sum() / (wn.sum() + 1e-6)
        expected.append(F.softplus(dp - dn))
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    exact = WeightedRegularizedTriplet(exact_softmax=True)(feats, targets)
    # exact softmax: each anchor's one positive and softmax(-d) over the two negatives
    ref = []
    for i in range(4):
        pos = (targets == targets[i]) & (torch.arange(4) != i)
        neg = targets != targets[i]
        dn = (torch.softmax(-d[i][neg], 0) * d[i][neg]).sum()
        ref.append(F.softplus(d[i][pos].sum() - dn))
    assert exact.item() == pytest.approx(torch.stack(ref).mean().item(), rel=1e-5)
    assert LOSS_REGISTRY.get("WeightedRegularizedTriplet") is WeightedRegularizedTriplet


def test_center_loss_formula_and_own_optimizer():
    loss = CenterLoss(num_classes=5, feat_dim=3, weight=0.5, center_lr=0.25)
    assert loss.own_optimizer == {"lr": 0.25, "grad_scale": 2.0}
    feats, targets = torch.randn(4, 3), torch.tensor([0, 4, 4, 1])
    value = loss(feats, targets)
    expected = ((feats - loss.centers[targets]).pow(2).sum(1).sum() + 4 * 4 * 1e-12) / 4 * 0.5
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert loss.centers.grad[[2, 3]].abs().max() == 0
    assert LOSS_REGISTRY.get("CenterLoss") is CenterLoss
    with pytest.raises(RuntimeError, match="NUM_CLASSES"):
        CenterLoss(0, 3)(feats, targets)


def test_imagenet_file_fills_both_stems(tmp_path):
    from torchvision.models import resnet50

    cfg = model_config(os.path.join(CONFIGS, "Base-AGW-VI.yml"), MODEL__DEVICE="cpu", MODEL__HEADS__NUM_CLASSES=3)
    torch.save(resnet50().state_dict(), tmp_path / "resnet50.pth")
    cfg.MODEL.PRETRAIN_PATH = str(tmp_path / "resnet50.pth")
    imagenet = torch.load(tmp_path / "resnet50.pth", weights_only=True)
    model = build_model(cfg)
    for stem in model.backbone.stems:
        assert torch.equal(stem.conv1.weight, imagenet["conv1.weight"])
        assert torch.equal(stem.bn1.running_var, imagenet["bn1.running_var"])
    assert torch.equal(model.backbone.layer3[5].conv2.weight, imagenet["layer3.5.conv2.weight"])


def test_two_stream_needs_modalities():
    fx = load_fixture("cross_modal_tiny")
    model = build_model(tiny_cfg("Base-AGW-VI.yml", fx)).eval()
    x = images(fx["vis_pixels"][:2])
    with pytest.raises(ValueError, match="modalities"):
        model({"images": x})
    with pytest.raises(ValueError, match="0 \\(visible\\) or 1"):
        model({"images": x, "modalities": torch.tensor([0, 2])})
