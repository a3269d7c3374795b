"""TF-CLIP / X-TFCLIP: reference parity, parameter counts, reference-checkpoint loading and conversion.

``fixtures/tfclip/tiny_{tfclip,xtfclip}.pt`` were produced by the reference code (AsuradaYuci/TF-CLIP,
BiDAlab/X-TFCLIP) with tiny models: a 2-block width-64 CLIP ViT (projection 64) from a random OpenAI-layout state
dict, TMD with 4 heads, 4-frame 64×32 clips, 5 classes, 6 cameras. Each holds the reference's perturbed
``state_dict()`` (fp16, values exactly representable), a random CLIP-Memory, uint8 clip pixels (ImageNet
normalisation), camera ids and labels, the reference eval feature (X-TFCLIP: mean with the mirrored clip, as
its test script) and the four loss terms of one training step with dropout off (fp32, CPU).
"""
import os

import pytest
import torch
from torch import nn

from engine_helpers import load_script, model_config

from agreid.data.video import takes_frames
from agreid.modeling import build_model
from agreid.modeling.conversion.tfclip import rename_key
from agreid.utils.checkpoint import Checkpointer
from agreid.utils.errors import CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "tfclip")
CONFIGS = {"tfclip": os.path.join(REPO, "configs", "AGVPReID", "tfclip.yml"),
           "xtfclip": os.path.join(REPO, "configs", "AGVPReID", "xtfclip.yml")}
TINY_CLIP = {"MODEL__CLIP__VISION_WIDTH": 64, "MODEL__CLIP__VISION_LAYERS": "[2]", "MODEL__CLIP__EMBED_DIM": 64,
             "MODEL__CLIP__TEXT_WIDTH": 64, "MODEL__CLIP__TEXT_LAYERS": 1}  # 2-block width-64 ViT, 64-d projection
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)


def load_fixture(name):
    return torch.load(os.path.join(FIXTURES, f"tiny_{name}.pt"), weights_only=True)


def tiny_cfg(name, fx, **extra):
    h, w = fx["size"].tolist()
    return model_config(CONFIGS[name], MODEL__DEVICE="cpu", MODEL__TFCLIP__TMD_HEADS=4, **TINY_CLIP,
                        MODEL__HEADS__NUM_CLASSES=fx["num_classes"], MODEL__NUM_CAMERAS=fx["num_cameras"],
                        MODEL__NUM_VIEWS=1, INPUT__SEQ_LEN=fx["seq_len"], INPUT__SIZE_TRAIN=f"[{h}, {w}]",
                        INPUT__SIZE_TEST=f"[{h}, {w}]", **extra)


def write_reference(fx, folder, prefix="", memory=True):
    """The fixture's state dict saved as the reference's training loop does (bare fp32), and its memory beside."""
    path = os.path.join(folder, "best_model.pth.tar")
    torch.save({prefix + k: v.float() if v.is_floating_point() else v for k, v in fx["state_dict"].items()}, path)
    if memory:
        torch.save(fx["memory"].float(), os.path.join(folder, "clip_memory.pt"))
    return path


def batch_of(fx):
    images = (fx["pixels"].float() / 255 - MEAN) / STD
    return {"images": images, "camids": fx["camids"], "views": torch.zeros_like(fx["camids"]),
            "targets": fx["targets"]}


def no_dropout(model):
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


@pytest.mark.parametrize("name", ["tfclip", "xtfclip"])
def test_tiny_parity_with_reference(name, tmp_path):
    fx = load_fixture(name)
    path = write_reference(fx, str(tmp_path), prefix="module." if name == "xtfclip" else "")
    model = build_model(tiny_cfg(name, fx, MODEL__WEIGHTS=path))  # clip_memory.pt beside the weights
    assert sum(p.numel() for p in model.parameters()) == fx["params"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == fx["trainable"]
    Checkpointer(model, str(tmp_path)).load(path)
    assert model.clip_memory.is_ready and torch.equal(model.clip_memory.bank, fx["memory"].float())
    batch = batch_of(fx)
    model.eval()
    with torch.no_grad():
        feat = model(batch)
    ref = fx["feature"]
    assert feat.shape == ref.shape == (4, 3 * 64)
    assert (feat - ref).abs().max() <= 1e-4 * ref.abs().max()
    no_dropout(model)
    model.train()
    losses = model(batch)
    expected = dict(zip(fx["loss_names"], fx["losses"].tolist()))
    assert set(losses) == set(expected)
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_xtfclip_flip_and_neck_feat_after(tmp_path):
    fx = load_fixture("xtfclip")
    path = write_reference(fx, str(tmp_path))
    model = build_model(tiny_cfg("xtfclip", fx, MODEL__TFCLIP__FLIP_TEST=False))
    Checkpointer(model, str(tmp_path)).load(path)
    model.eval()
    batch = batch_of(fx)
    with torch.no_grad():
        plain = model(batch)
        mirrored = model({**batch, "images": torch.flip(batch["images"], dims=[-1])})
    assert torch.allclose((plain + mirrored) / 2, fx["feature"], atol=1e-5)
    assert not torch.allclose(plain, fx["feature"], atol=1e-3)
    after = build_model(tiny_cfg("xtfclip", fx, MODEL__HEADS__NECK_FEAT="after"))
    Checkpointer(after, str(tmp_path)).load(path)
    with torch.no_grad():
        feat = after.eval()(batch)
    assert feat.shape == (4, 128)  # reference: cat[neck(f), neck(f_proj)] only
    per_row = feat[:, :64]
    assert torch.allclose(per_row.mean(1), torch.zeros(4), atol=1e-5)  # instance "BNNeck": standardised rows


def test_evaluation_takes_whole_clips(tmp_path):
    fx = load_fixture("tfclip")
    path = write_reference(fx, str(tmp_path), memory=False)
    model = build_model(tiny_cfg("tfclip", fx))
    Checkpointer(model, str(tmp_path)).load(path)
    assert not model.clip_memory.is_ready  # evaluation does not need it
    batch = batch_of(fx)
    assert not takes_frames(model) and takes_frames(build_model(model_config(
        os.path.join(REPO, "configs", "Demo", "bagtricks_R18.yml"), MODEL__DEVICE="cpu")))
    with torch.no_grad():
        assert torch.allclose(model.eval()(batch), fx["feature"], atol=1e-5)
        with pytest.raises(ValueError, match="B×T×3×H×W clips"):
            model({**batch, "images": batch["images"].flatten(0, 1)})
    with pytest.raises(RuntimeError, match="CLIP-Memory is not built"):
        model.train()(batch)


def test_wrong_variant_is_refused(tmp_path):
    fx = load_fixture("xtfclip")
    path = write_reference(fx, str(tmp_path))
    model = build_model(tiny_cfg("tfclip", load_fixture("tfclip")))
    with pytest.raises(CheckpointError, match="X-TFCLIP checkpoint.*VIDEO_EMBED on"):
        Checkpointer(model, str(tmp_path)).load(path)


def test_key_renames():
    assert rename_key("cv_embed") == "sie_embed"
    assert rename_key("bottleneck_proj_temp2.running_var") == "neck_tmd.running_var"
    assert rename_key("bottleneck_proj_temp.weight") == "neck_frame.weight"
    assert rename_key("classifier_proj_temp2.weight") == "classifier_tmd_unused.weight"
    assert rename_key("tap_img_feature_proj.attn_mlp.0.weight") == "pool_proj.attn_mlp.0.weight"
    assert rename_key("TMD.resblocks.0.message_attn.in_proj_weight") == "tmd.resblocks.0.message_attn.in_proj_weight"
    assert rename_key("image_encoder.transformer.resblocks.1.ln_1.weight") == \
        "image_encoder.transformer.resblocks.1.ln_1.weight"


def test_convert_checkpoint_tool_keeps_the_memory(tmp_path):
    fx = load_fixture("tfclip")
    src = write_reference(fx, str(tmp_path))
    dst = str(tmp_path / "agreid.pth")
    h, w = fx["size"].tolist()
    opts = [x for k, v in TINY_CLIP.items() for x in (k.replace("__", "."), str(v))] + [
            "MODEL.TFCLIP.TMD_HEADS", "4", "MODEL.HEADS.NUM_CLASSES", str(fx["num_classes"]), "MODEL.NUM_CAMERAS",
            "6", "MODEL.NUM_VIEWS", "1", "INPUT.SEQ_LEN", str(fx["seq_len"]), "INPUT.SIZE_TRAIN", f"[{h}, {w}]",
            "INPUT.SIZE_TEST", f"[{h}, {w}]", "MODEL.TFCLIP.MEMORY_FILE", str(tmp_path / "clip_memory.pt"),
            "OUTPUT_DIR", str(tmp_path / "out")]
    report = load_script(os.path.join("tools", "convert_checkpoint.py")).convert(CONFIGS["tfclip"], src, dst, opts)
    assert report["format"] == ["TF-CLIP"] and not report["missing"]
    state = torch.load(dst, weights_only=True)["model"]
    assert torch.equal(state["clip_memory.bank"], fx["memory"].float()) and bool(state["clip_memory.ready"])
    model = build_model(tiny_cfg("tfclip", fx))
    Checkpointer(model, str(tmp_path)).load(dst)  # agreid keys: no conversion, memory included
    assert model.clip_memory.is_ready


@pytest.mark.parametrize("config,classes,size,total,trainable", [
    ("tfclip", 625, (256, 128), 107_148_544, 107_145_728),
    ("xtfclip", 689, (288, 144), 108_505_606, 108_505_606)])
def test_full_size_parameter_counts(config, classes, size, total, trainable):
    cfg = model_config(CONFIGS[config], MODEL__DEVICE="cpu", MODEL__HEADS__NUM_CLASSES=classes,
                       MODEL__NUM_CAMERAS=6, MODEL__NUM_VIEWS=1, INPUT__SIZE_TRAIN=f"[{size[0]}, {size[1]}]")
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == total
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable
    assert model.clip_memory.bank.shape == (classes, 512)  # data, not a parameter
    assert model.image_encoder.grid_size == (size[0] // 16, size[1] // 16)
