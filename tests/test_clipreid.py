"""CLIP-ReID (ViT stride 16, ViT stride 12 + SIE camera, RN50): reference parity, stages, parameter counts, loading.

The fixtures under ``fixtures/clipreid/`` were produced by the reference code (Syliz517/CLIP-ReID, run on the CPU)
from a tiny random CLIP in the OpenAI layout (ViT: 2 layers, width 64, patch 16, pretrained grid 7×7, joint width
32; RN50 layout: stages (1, 1, 1, 1), stem width 4; text: 2 layers, width 64, context 77) at 64×32 input, with 6
identities and 3 cameras. Each holds the reference's perturbed ``model.state_dict()`` (fp16, every value exactly
representable), uint8 pixels, labels and camera ids, and the reference's eval feature, stage-1 image / text
features and SupCon losses, stage-2 text bank and ID / triplet / i2t loss terms (fp32, CPU). Runtime patches of
the reference for the tiny model: hidden widths from the CLIP dims (it hard-codes 768/512, 2048/1024 and a
512-wide prompt), "blocks[:-1] / blocks[-1]" for its "blocks[:11] / blocks[11]".
"""
import os

import pytest
import torch

from agreid.config import get_cfg
from agreid.modeling import build_model
from agreid.modeling.conversion import convert_reference_state
from agreid.modeling.stages import model_stages
from agreid.registries import META_ARCH_REGISTRY
from agreid.utils.checkpoint import Checkpointer

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "clipreid")
CASES = ("tiny_vit", "tiny_vit_sie", "tiny_rn50")


def load_fixture(name, folder=FIXTURES):
    return torch.load(os.path.join(folder, f"{name}.pt"), weights_only=True)


def tiny_cfg(fx, arch="CLIPReID"):
    cfg = get_cfg()
    d = fx["dims"]
    cfg.MODEL.META_ARCHITECTURE = arch
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.CLIP.NAME = fx["name"]
    cfg.MODEL.CLIP.EMBED_DIM = d["embed_dim"]
    layers = d["vision_layers"]
    cfg.MODEL.CLIP.VISION_LAYERS = list(layers) if isinstance(layers, list) else [layers]
    cfg.MODEL.CLIP.VISION_WIDTH = d["vision_width"]
    cfg.MODEL.CLIP.VISION_PATCH_SIZE = d.get("vision_patch_size", 0)
    cfg.MODEL.CLIP.VISION_GRID = d["vision_grid"]
    cfg.MODEL.CLIP.TEXT_WIDTH = d["text_width"]
    cfg.MODEL.CLIP.TEXT_LAYERS = d["text_layers"]
    cfg.MODEL.CLIP.STRIDE_SIZE = fx["stride"]
    cfg.MODEL.CLIP.ID_LOSS_WEIGHT, cfg.MODEL.CLIP.TRIPLET_LOSS_WEIGHT, cfg.MODEL.CLIP.I2T_LOSS_WEIGHT = \
        fx["loss_weights"]
    cfg.MODEL.SIE.CAMERA, cfg.MODEL.SIE.VIEW, cfg.MODEL.SIE.COE = fx["sie_camera"], fx["sie_view"], fx["sie_coe"]
    cfg.MODEL.NUM_CAMERAS, cfg.MODEL.NUM_VIEWS = fx["num_cameras"], fx["num_views"]
    cfg.MODEL.HEADS.NUM_CLASSES = fx["num_classes"]
    cfg.MODEL.HEADS.NECK_FEAT = "before"
    cfg.INPUT.SIZE_TRAIN = cfg.INPUT.SIZE_TEST = list(fx["size"])
    return cfg


def reference_file(fx, path, prefix=""):
    """The reference checkpoint as its training loop saves it (bare ``model.state_dict()``, fp32)."""
    torch.save({prefix + k: v.float() if v.is_floating_point() else v for k, v in fx["state_dict"].items()}, path)
    return path


def batch_of(fx, views=None):
    mean, std = torch.tensor(fx["mean"]).view(1, 3, 1, 1), torch.tensor(fx["std"]).view(1, 3, 1, 1)
    return {"images": (fx["pixels"].float() / 255 - mean) / std, "targets": fx["targets"],
            "camids": fx["camids"], "views": fx["views_reference"] if views is None else views}


def loaded_model(fx, tmp_path, arch="CLIPReID", prefix=""):
    model = build_model(tiny_cfg(fx, arch))
    Checkpointer(model, str(tmp_path)).load(reference_file(fx, str(tmp_path / "ref.pth"), prefix),
                                            checkpointables=[])
    return model


def close(a, b, tol=1e-4):
    return a.shape == b.shape and (a - b).abs().max().item() <= tol * b.abs().max().item()


class FakeContext:
    """The trainer's StageContext, reduced to what CLIP-ReID's begin_stage uses."""

    device = torch.device("cpu")

    def __init__(self, batch, batch_size=3):
        self.batch, self.batch_size, self.train_records = batch, batch_size, list(range(len(batch["targets"])))
        self.cache_keys = []

    def inference_loader(self, records):
        n = len(records)
        for i in range(0, n, 5):  # several batches, the last one partial
            yield {k: v[i:i + 5] for k, v in self.batch.items()}

    def tensor_loader(self, tensors, batch_size, shuffle=True, drop_last=False):
        n = len(next(iter(tensors.values())))
        return [{k: v[i:i + batch_size] for k, v in tensors.items()} for i in range(0, n, batch_size)]

    def cached(self, key, compute):
        self.cache_keys.append(key)
        return compute()

    def progress(self, iterable, desc, total=None):
        return iterable


@pytest.mark.parametrize("name", CASES)
def test_eval_feature_matches_reference(name, tmp_path):
    fx = load_fixture(name)
    model = loaded_model(fx, tmp_path).eval()
    with torch.no_grad():
        feat = model(batch_of(fx))
    assert close(feat, fx["eval_feature"])


@pytest.mark.parametrize("name", CASES)
def test_stage_losses_match_reference(name, tmp_path):
    fx = load_fixture(name)
    model = loaded_model(fx, tmp_path)
    assert [s.name for s in model_stages(model)] == ["prompt", "image"]
    batch = batch_of(fx)
    ctx = FakeContext(batch)
    model.train()
    batches = model.begin_stage("prompt", ctx)
    assert ctx.cache_keys == ["clip_image_features"] and model.training  # encoder put back in train mode
    assert [len(b["targets"]) for b in batches] == [3, 3, 2]  # the last partial batch is kept
    features = torch.cat([b["features"] for b in batches])
    assert close(features, fx["stage1_image_features"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"prompt_learner.cls_ctx"}
    with torch.no_grad():
        assert close(model.encode_text(fx["stage1_text_ids"]), fx["stage1_text_features"])
    model.stage = "prompt"
    losses = model({"features": fx["stage1_image_features"], "targets": fx["targets"]})
    assert losses["loss_i2t"].item() == pytest.approx(fx["loss_i2t_stage1"].item(), rel=1e-5)
    assert losses["loss_t2i"].item() == pytest.approx(fx["loss_t2i_stage1"].item(), rel=1e-5)
    losses["loss_i2t"].backward()
    assert model.prompt_learner.cls_ctx.grad is not None

    assert model.begin_stage("image", ctx) is None
    assert close(model.text_features, fx["stage2_text_features"])
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters()
                      if n.startswith(("prompt_learner.", "text_encoder.")) or n.endswith("bottleneck.bias")
                      or n.endswith("bottleneck_proj.bias")}
    model.stage = "image"
    losses = model(batch)
    w_id, w_tri, w_i2t = fx["loss_weights"]
    assert losses["loss_cls"].item() == pytest.approx(w_id * fx["loss_id_sum"].item(), rel=1e-5)
    assert losses["loss_triplet"].item() == pytest.approx(w_tri * fx["loss_tri_sum"].item(), rel=1e-5)
    assert losses["loss_i2t"].item() == pytest.approx(w_i2t * fx["loss_i2t_ce"].item(), rel=1e-5)
    assert sum(losses.values()).item() == pytest.approx(fx["loss_stage2_total"].item(), rel=1e-5)


def test_module_prefixed_file_and_converter(tmp_path):
    fx = load_fixture("tiny_vit_sie")
    model = loaded_model(fx, tmp_path, prefix="module.").eval()  # DataParallel-trained file
    with torch.no_grad():
        assert close(model(batch_of(fx)), fx["eval_feature"])
    state = {k: v.float() for k, v in fx["state_dict"].items()}
    assert convert_reference_state(state, model) is None  # the keys already fit: no conversion needed
    plain = build_model(tiny_cfg(load_fixture("tiny_vit")))
    converted = convert_reference_state(state, plain)  # a SIE file for a model without SIE
    assert converted.format == "CLIP-ReID" and converted.dead == ["cv_embed"]


def test_wrong_stride_is_a_clear_error(tmp_path):
    from agreid.utils.errors import CheckpointError

    fx = load_fixture("tiny_vit_sie")
    cfg = tiny_cfg(fx)
    cfg.MODEL.CLIP.STRIDE_SIZE = 16
    model = build_model(cfg)
    with pytest.raises(CheckpointError, match="positional_embedding"):
        Checkpointer(model, str(tmp_path)).load(reference_file(fx, str(tmp_path / "f.pth")), checkpointables=[])


def meta_model(name="ViT-B-16", **kw):
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE = kw.pop("arch", "CLIPReID")
    cfg.MODEL.CLIP.NAME = name
    cfg.MODEL.HEADS.NUM_CLASSES = kw.pop("classes", 751)
    cfg.MODEL.NUM_CAMERAS, cfg.MODEL.NUM_VIEWS = kw.pop("cams", 6), kw.pop("views", 1)
    cfg.MODEL.CLIP.STRIDE_SIZE = kw.pop("stride", 16)
    cfg.MODEL.SIE.CAMERA, cfg.MODEL.SIE.VIEW = kw.pop("sie_cam", False), kw.pop("sie_view", False)
    with torch.device("meta"):
        return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)


def stage_counts(model):
    from agreid.modeling.meta_arch.clipreid import FROZEN_IN_IMAGE_STAGE
    from agreid.modeling.stages import freeze_all_but

    total = sum(p.numel() for p in model.parameters())
    s1 = freeze_all_but(model, lambda n: n.startswith("prompt_learner."))
    s2 = freeze_all_but(model, lambda n: not n.startswith(FROZEN_IN_IMAGE_STAGE))
    return total, s1, s2, len(model.state_dict())


@pytest.mark.parametrize("kw,expected", [
    ({}, (126_773_504, 1_538_048, 87_102_976, 315)),
    ({"stride": 12, "sie_cam": True}, (126_841_088, 1_538_048, 87_170_560, 316)),
    ({"name": "RN50"}, (80_723_296, 1_538_048, 40_788_832, 502)),
])
def test_full_size_parameter_counts_equal_reference(kw, expected):
    model = meta_model(**kw)
    assert stage_counts(model) == expected
    assert model.image_encoder.grid_size == ((21, 10) if kw.get("stride") == 12 else (16, 8))


def test_prompt_template_embeds_the_template_tokens():
    from agreid.modeling.backbones.clip_text import PromptLearner, tokenize

    emb = torch.nn.Embedding(49408, 16)
    learner = PromptLearner(3, "A photo of a X X X X person.", emb)
    ids = tokenize("A photo of a X X X X person.")
    assert ids[0, :12].tolist() == [49406, 320, 1125, 539, 320, 343, 343, 343, 343, 2533, 269, 49407]
    assert learner.n_ctx == 4 and learner.tokens.argmax().item() == 11
    assert torch.equal(learner.token_prefix[0], emb.weight[ids[0, :5]].detach())
    assert torch.equal(learner.token_suffix[0], emb.weight[ids[0, 9:]].detach())
    prompts = learner(torch.tensor([2, 0]))
    assert prompts.shape == (2, 77, 16) and torch.equal(prompts[0, 5:9], learner.cls_ctx[2].detach())
    with pytest.raises(ValueError, match="slots"):
        PromptLearner(3, "A photo of a person.", emb)


def test_sie_needs_side_information(tmp_path):
    fx = load_fixture("tiny_vit_sie")
    model = build_model(tiny_cfg(fx)).eval()
    batch = batch_of(fx)
    with pytest.raises(ValueError, match="camera id"):
        model({k: v for k, v in batch.items() if k != "camids"})
    with pytest.raises(ValueError, match="NUM_CAMERAS"):
        model(dict(batch, camids=batch["camids"] + 3))
