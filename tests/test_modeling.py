"""Tests of agreid.modeling: backbones, pooling, BNNeck head, losses, the Baseline and pretrained loading."""
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from timm.models.vision_transformer import VisionTransformer

from agreid.config.defaults import _C
from agreid.modeling import build_backbone, build_model, load_pretrained, resolve_device
from agreid.modeling.backbones import ResNetBackbone
from agreid.modeling.heads import BNNeckHead, build_pooling
from agreid.modeling.losses import CrossEntropyLoss, TripletLoss
from agreid.modeling.pretrained import read_state_dict, resize_pos_embed
from agreid.utils.key_report import group_keys

torch.set_num_threads(1)


def tiny_cfg(backbone="resnet18", size=(64, 32), num_classes=4, stride=16, patch=16):
    cfg = _C.clone()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.HEADS.NUM_CLASSES = num_classes
    cfg.INPUT.SIZE_TRAIN = list(size)
    cfg.INPUT.SIZE_TEST = list(size)
    v = cfg.MODEL.BACKBONE.VIT
    v.EMBED_DIM, v.DEPTH, v.NUM_HEADS, v.DROP_PATH = 64, 2, 2, 0.0
    v.PATCH_SIZE, v.STRIDE_SIZE = patch, stride
    if backbone == "vit":
        cfg.MODEL.HEADS.POOL = "token"
    return cfg


def make_batch(n_ids=4, k=2, size=(64, 32), seed=0):
    g = torch.Generator().manual_seed(seed)
    b = n_ids * k
    return {
        "images": torch.randn(b, 3, *size, generator=g),
        "targets": torch.arange(n_ids).repeat_interleave(k),
        "camids": torch.zeros(b, dtype=torch.long),
        "views": torch.arange(b) % 2,
        "indices": torch.arange(b),
        "paths": [f"img{i}.jpg" for i in range(b)],
    }


def tiny_timm_vit(img_size=224, patch=16):
    torch.manual_seed(0)
    return VisionTransformer(img_size=img_size, patch_size=patch, embed_dim=64, depth=2, num_heads=2)


# ---------------------------------------------------------------- backbones


@pytest.mark.parametrize("last_stride,hw", [(1, (4, 2)), (2, (2, 1))])
def test_resnet18_shapes(last_stride, hw):
    cfg = tiny_cfg()
    cfg.MODEL.BACKBONE.LAST_STRIDE = last_stride
    net = build_backbone(cfg)
    assert net.out_dim == 512
    assert not hasattr(net, "fc") and not hasattr(net, "avgpool")
    assert net(torch.randn(2, 3, 64, 32)).shape == (2, 512, *hw)


def test_resnet50_out_dim():
    net = build_backbone(tiny_cfg("resnet50")).eval()
    assert net.out_dim == 2048
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 32)).shape == (1, 2048, 4, 2)


@pytest.mark.parametrize("stride,grid", [(16, (4, 2)), (12, (5, 2)), (8, (7, 3))])
def test_vit_shapes(stride, grid):
    net = build_backbone(tiny_cfg("vit", stride=stride))
    n = grid[0] * grid[1]
    assert net.out_dim == 64
    assert tuple(net.patch_embed.grid_size) == grid
    assert net.pos_embed.shape == (1, n + 1, 64)
    assert net.patch_embed.proj.stride == (stride, stride)
    assert net(torch.randn(2, 3, 64, 32)).shape == (2, n + 1, 64)


def test_vit_other_test_size():
    cfg = tiny_cfg("vit")
    cfg.INPUT.SIZE_TEST = [128, 64]
    net = build_backbone(cfg).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 32)).shape == (1, 9, 64)
        assert net(torch.randn(1, 3, 128, 64)).shape == (1, 33, 64)


def test_vit_wrong_size_rejected():
    net = build_backbone(tiny_cfg("vit"))
    with pytest.raises(ValueError, match="SIZE_TRAIN"):
        net(torch.randn(1, 3, 128, 64))


# ---------------------------------------------------------------- pooling and head


def test_pooling_maps_and_tokens():
    fmap = torch.rand(2, 5, 4, 3) + 0.1
    tokens = torch.randn(2, 7, 5)
    assert torch.allclose(build_pooling("avg")(fmap), fmap.mean(dim=(2, 3)))
    assert torch.allclose(build_pooling("max")(fmap), fmap.amax(dim=(2, 3)))
    assert torch.allclose(build_pooling("gem", gem_p=1.0)(fmap), fmap.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(build_pooling("gem", gem_p=3.0)(fmap), fmap.pow(3).mean(dim=(2, 3)).pow(1 / 3), atol=1e-6)
    assert not build_pooling("gem").p.requires_grad
    assert build_pooling("gem_learn").p.requires_grad
    assert torch.equal(build_pooling("token")(tokens), tokens[:, 0])
    assert torch.allclose(build_pooling("avg")(tokens), tokens[:, 1:].mean(dim=1))
    with pytest.raises(ValueError, match="token"):
        build_pooling("token")(fmap)
    with pytest.raises(KeyError, match="avg"):
        build_pooling("mean")


def test_bnneck_head():
    torch.manual_seed(0)
    head = BNNeckHead(32, num_classes=500, pool="avg")
    assert not head.bottleneck.bias.requires_grad
    assert torch.equal(head.bottleneck.weight, torch.ones(32))
    assert torch.equal(head.bottleneck.bias, torch.zeros(32))
    assert head.classifier.bias is None
    assert head.classifier.weight.std().item() == pytest.approx(0.001, rel=0.05)
    x = torch.randn(6, 32, 4, 2)
    out = head(x)
    assert set(out) == {"cls_logits", "features_before", "features_after"}
    assert out["cls_logits"].shape == (6, 500)
    assert torch.allclose(out["features_before"], x.mean(dim=(2, 3)))
    assert out["features_after"].shape == (6, 32)
    out["cls_logits"].sum().backward()
    assert head.bottleneck.bias.grad is None and head.bottleneck.weight.grad is not None
    head.eval()
    after = head(x)
    head.neck_feat = "before"
    assert torch.allclose(head(x), x.mean(dim=(2, 3)))
    assert after.shape == (6, 32) and not torch.allclose(after, x.mean(dim=(2, 3)))


def test_bnneck_without_classes():
    head = BNNeckHead(16, num_classes=0)
    assert head.classifier is None
    assert head(torch.randn(3, 16, 2, 2))["cls_logits"] is None


# ---------------------------------------------------------------- losses


def test_cross_entropy_label_smoothing_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    targets = torch.tensor([0, 1])
    eps = 0.1
    logp = torch.log_softmax(logits, dim=1)
    expected = 0.0
    for i, t in enumerate(targets.tolist()):
        q = [eps / 3 + (1 - eps if c == t else 0.0) for c in range(3)]
        expected -= sum(q[c] * logp[i, c].item() for c in range(3))
    expected /= 2
    assert CrossEntropyLoss(epsilon=eps)(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    assert CrossEntropyLoss(epsilon=eps, scale=2.0)(logits, targets).item() == pytest.approx(2 * expected, rel=1e-6)
    plain = -(logp[0, 0] + logp[1, 1]).item() / 2
    assert CrossEntropyLoss(epsilon=0.0)(logits, targets).item() == pytest.approx(plain, rel=1e-6)


def _line(xs):
    return torch.tensor([[float(x), 0.0] for x in xs])


def test_triplet_batch_hard_by_hand():
    feats = _line([0, 1, 4, 6, 9])
    ids = torch.tensor([0, 0, 0, 1, 1])
    # (hardest positive, hardest negative) per anchor: (4,6) (3,5) (4,2) (3,2) (3,5)
    assert TripletLoss(margin=1.0)(feats, ids).item() == pytest.approx((3 + 2) / 5, abs=1e-5)
    soft = sum(math.log1p(math.exp(d)) for d in (-2, -2, 2, 1, -2)) / 5
    assert TripletLoss(margin=0.0)(feats, ids).item() == pytest.approx(soft, abs=1e-5)
    assert TripletLoss(margin=1.0, scale=0.5)(feats, ids).item() == pytest.approx(0.5, abs=1e-5)


def test_triplet_skips_anchors_without_positive_and_options():
    feats = _line([0, 1, 5])
    ids = torch.tensor([0, 0, 1])
    # anchors 0 and 1 only: (1 - 5 + 5) and (1 - 4 + 5)
    assert TripletLoss(margin=5.0)(feats, ids).item() == pytest.approx((1 + 2) / 2, abs=1e-5)
    single = TripletLoss()(feats, torch.tensor([0, 1, 2]))
    assert single.item() == 0.0
    normed = TripletLoss(margin=0.3, norm_feat=True)(torch.randn(8, 4) * 100, torch.arange(4).repeat(2))
    assert 0.0 <= normed.item() <= 2.3
    weighted = TripletLoss(hard_mining=False)(torch.randn(8, 4), torch.arange(4).repeat(2))
    assert torch.isfinite(weighted) and weighted.item() >= 0.0


def test_losses_from_config():
    cfg = _C.clone()
    cfg.MODEL.LOSSES.TRI.MARGIN = 0.0
    cfg.MODEL.LOSSES.CE.EPSILON = 0.2
    assert TripletLoss.from_config(cfg).margin == 0.0
    assert CrossEntropyLoss.from_config(cfg).epsilon == 0.2


# ---------------------------------------------------------------- baseline


@pytest.mark.parametrize("backbone,dim", [("resnet18", 512), ("vit", 64)])
def test_baseline_train_and_eval(backbone, dim):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(backbone))
    assert model.device == resolve_device("cpu")
    batch = make_batch()
    images, targets = batch["images"].clone(), batch["targets"].clone()
    losses = model(batch)
    assert set(losses) == {"loss_cls", "loss_triplet"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        feats = model(batch)
    assert feats.shape == (8, dim)
    assert torch.equal(batch["images"], images) and torch.equal(batch["targets"], targets)


@pytest.mark.parametrize("backbone,steps,lr", [("resnet18", 8, 1e-3), ("vit", 10, 1e-3)])
def test_baseline_loss_falls(backbone, steps, lr):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(backbone)).train()
    batch = make_batch(seed=1)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    history = []
    for _ in range(steps):
        total = sum(model(batch).values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(total.item())
    assert history[-1] < 0.7 * history[0], history


def test_baseline_without_classifier():
    model = build_model(tiny_cfg(num_classes=0))
    with pytest.raises(RuntimeError, match="NUM_CLASSES"):
        model(make_batch())
    model.eval()
    with torch.no_grad():
        assert model(make_batch()).shape == (8, 512)
    cfg = tiny_cfg(num_classes=0)
    cfg.MODEL.LOSSES.NAMES = ("TripletLoss",)
    assert set(build_model(cfg)(make_batch())) == {"loss_triplet"}


def test_unknown_meta_arch():
    cfg = tiny_cfg()
    cfg.MODEL.META_ARCHITECTURE = "Baselin"
    with pytest.raises(KeyError, match="Baseline"):
        build_model(cfg)


# ---------------------------------------------------------------- pretrained loading


@pytest.mark.parametrize("stride,grid", [(16, (4, 2)), (12, (5, 2))])
def test_load_timm_vit(tmp_path, stride, grid):
    src = tiny_timm_vit()
    sd = src.state_dict()
    assert "head.weight" in sd
    sd["head.extra"] = torch.zeros(3)
    path = tmp_path / "vit.pth"
    torch.save(sd, path)
    net = build_backbone(tiny_cfg("vit", stride=stride))
    report = load_pretrained(net, str(path))
    assert net.pos_embed.shape == (1, 1 + grid[0] * grid[1], 64)
    assert torch.equal(net.pos_embed[0, 0], sd["pos_embed"][0, 0])
    assert torch.equal(net.cls_token, sd["cls_token"])
    assert torch.equal(net.blocks[1].mlp.fc2.weight, sd["blocks.1.mlp.fc2.weight"])
    assert report.missing == []
    assert sorted(report.unexpected) == ["head.bias", "head.extra", "head.weight"]
    assert report.mismatched == {}
    assert "pos_embed" in report.adapted and f"{grid[0]}x{grid[1]}" in report.adapted["pos_embed"]
    assert len(report.loaded) == len(net.state_dict())
    assert "head.{weight,bias,extra}" in report.summary()


def test_pos_embed_resize_non_square_and_constant():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    out = resize_pos_embed(pos, (16, 8), num_prefix=1)
    assert out.shape == (1, 1 + 128, 8) and torch.equal(out[:, 0], pos[:, 0])
    const = torch.cat([pos[:, :1], torch.full((1, 21 * 10, 8), 0.5)], dim=1)
    out = resize_pos_embed(const, (14, 14), num_prefix=1, old_grid=(21, 10))
    assert torch.allclose(out[:, 1:], torch.full_like(out[:, 1:], 0.5), atol=1e-5)
    with pytest.raises(ValueError, match="grid"):
        resize_pos_embed(const, (14, 14), num_prefix=1)


def test_load_wrapped_prefixed_and_kernel_resize(tmp_path):
    sd = tiny_timm_vit().state_dict()
    wrapped = {"state_dict": {f"module.backbone.{k}": v for k, v in sd.items()}, "epoch": 3}
    path = tmp_path / "wrapped.pth"
    torch.save(wrapped, path)
    net = build_backbone(tiny_cfg("vit", patch=32, stride=16))
    report = load_pretrained(net, str(path))
    assert net.patch_embed.proj.weight.shape == (64, 3, 32, 32)
    assert "patch_embed.proj.weight" in report.adapted
    assert net.pos_embed.shape == (1, 1 + 3 * 1, 64)
    assert report.mismatched == {} and report.missing == []
    assert sorted(report.unexpected) == ["head.bias", "head.weight"]
    resized = F.conv2d(torch.ones(1, 3, 32, 32), net.patch_embed.proj.weight)
    original = F.conv2d(torch.ones(1, 3, 16, 16), sd["patch_embed.proj.weight"])
    assert torch.allclose(resized, original, rtol=1e-3, atol=1e-4)


def test_shape_mismatch_skipped(tmp_path):
    sd = tiny_timm_vit().state_dict()
    sd["blocks.0.mlp.fc1.weight"] = torch.zeros(7, 64)
    sd["blocks.1.mlp.fc1.weight"] = torch.zeros(7, 64)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    net = build_backbone(tiny_cfg("vit"))
    before = net.blocks[0].mlp.fc1.weight.clone()
    report = load_pretrained(net, str(path))
    assert set(report.mismatched) == {"blocks.0.mlp.fc1.weight", "blocks.1.mlp.fc1.weight"}
    assert report.mismatched["blocks.0.mlp.fc1.weight"] == ((7, 64), (256, 64))
    assert torch.equal(net.blocks[0].mlp.fc1.weight, before)
    assert "blocks.{0..1}.mlp.fc1.weight: [7, 64] -> [256, 64]" in report.summary()


def test_load_safetensors(tmp_path):
    from safetensors.torch import save_file
    sd = {k: v.contiguous() for k, v in tiny_timm_vit().state_dict().items()}
    path = tmp_path / "vit.safetensors"
    save_file(sd, str(path))
    net = build_backbone(tiny_cfg("vit"))
    report = load_pretrained(net, str(path))
    assert report.missing == [] and torch.equal(net.cls_token, sd["cls_token"])


def test_load_torchvision_resnet18(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save(tv.state_dict(), path)
    net = ResNetBackbone(18, last_stride=1)
    report = load_pretrained(net, str(path))
    assert report.missing == [] and report.mismatched == {}
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"]
    assert torch.equal(net.layer4[0].conv1.weight, tv.layer4[0].conv1.weight)
    assert net.layer4[0].conv1.stride == (1, 1)


def test_build_model_loads_pretrain_path(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save(tv.state_dict(), path)
    cfg = tiny_cfg()
    cfg.MODEL.PRETRAIN_PATH = str(path)
    model = build_model(cfg)
    assert torch.equal(model.backbone.conv1.weight, tv.conv1.weight)


def test_missing_and_unreadable_files(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="MODEL.PRETRAIN_PATH") as err:
        read_state_dict(str(missing))
    assert str(missing) in str(err.value)
    cfg = tiny_cfg()
    cfg.MODEL.PRETRAIN_PATH = str(missing)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_model(cfg)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="Could not read"):
        read_state_dict(str(garbage))


def test_group_keys():
    keys = [f"blocks.{i}.attn.qkv.{p}" for i in range(12) for p in ("weight", "bias")] + ["norm.weight"]
    assert group_keys(keys) == ["blocks.{0..11}.attn.qkv.{weight,bias}", "norm.weight"]
    assert group_keys(["layer1.0.bn1.weight", "layer1.2.bn1.weight", "layer1.3.bn1.weight"]) == \
        ["layer1.{0,2..3}.bn1.weight"]


@pytest.mark.parametrize("hard_mining", [True, False])
def test_triplet_gradients_stay_finite_with_anchors_left_out(hard_mining):
    """Singleton identities are masked, not indexed out: their rows must not leak NaN into the gradient."""
    feats = torch.randn(7, 5, requires_grad=True)
    ids = torch.tensor([0, 0, 1, 1, 2, 3, 4])  # ids 2..4 have no positive
    loss = TripletLoss(margin=0.0, hard_mining=hard_mining)(feats, ids)
    keep = torch.tensor([0, 1, 2, 3])
    ref = TripletLoss(margin=0.0, hard_mining=hard_mining)
    dist = torch.cdist(feats, feats)
    same = ids[:, None] == ids[None, :]
    pos, neg = (same & ~torch.eye(7, dtype=torch.bool))[keep], (~same)[keep]
    if hard_mining:
        ap, an = dist[keep].masked_fill(~pos, -1e9).amax(1), dist[keep].masked_fill(~neg, 1e9).amin(1)
    else:
        wp = torch.softmax(dist[keep].masked_fill(~pos, float("-inf")), 1)
        wn = torch.softmax((-dist[keep]).masked_fill(~neg, float("-inf")), 1)
        ap, an = (wp * dist[keep]).sum(1), (wn * dist[keep]).sum(1)
    assert loss.item() == pytest.approx(torch.nn.functional.softplus(ap - an).mean().item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(feats.grad).all()
    assert ref(feats.detach(), torch.arange(7)).item() == 0.0
