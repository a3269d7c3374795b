"""CLIP weight files (OpenAI TorchScript archives, plain and open_clip state dicts) and the re-ID towers built
from them: strided ViT with a bilinearly resized grid, RN50 with layer4 at stride 1, text encoder keys."""
import pytest
import torch
import torch.nn.functional as F

from agreid.config import get_cfg
from agreid.modeling import build_model
from agreid.modeling.backbones.clip_loading import (build_clip, dims_from_state_dict, named_dims,
                                                     read_clip_state_dict)
from agreid.utils.errors import CheckpointError

TINY = dict(embed_dim=32, vision_width=64, vision_grid=4, text_width=64, text_layers=2, vocab_size=500)


def tiny_clip(name="ViT-B-16", seed=0, vocab_size=500):
    """A tiny random CLIP; the prompt learner needs the full 49,408-token vocabulary (vocab_size=0)."""
    torch.manual_seed(seed)
    layers = [2] if name == "ViT-B-16" else [1, 1, 1, 1]
    width = 64 if name == "ViT-B-16" else 4
    return build_clip(named_dims(name, vision_layers=layers, **dict(TINY, vision_width=width, vocab_size=vocab_size)))


def openai_torchscript_file(path, vocab_size=500):
    """A TorchScript archive of a tiny CLIP with OpenAI's keys and partial-fp16 layout (like ViT-B-16.pt)."""
    from open_clip.model import convert_weights_to_lp

    model = tiny_clip(vocab_size=vocab_size)
    convert_weights_to_lp(model, torch.float16)
    torch.jit.script(model).save(str(path))
    return model.state_dict()


def test_openai_torchscript_archive_is_read_as_its_state_dict(tmp_path):
    expected = openai_torchscript_file(tmp_path / "ViT-B-16.pt")
    state = read_clip_state_dict(str(tmp_path / "ViT-B-16.pt"))
    assert set(state) == set(expected)
    assert all(v.dtype == torch.float32 and torch.equal(v, expected[k].float()) for k, v in state.items())
    assert expected["visual.conv1.weight"].dtype == torch.float16  # the file really was partly fp16
    dims = dims_from_state_dict(state)
    assert (dims.vision_layers, dims.vision_width, dims.vision_grid, dims.text_layers, dims.vocab_size) == \
        (2, 64, 4, 2, 500)


def test_plain_and_open_clip_files(tmp_path):
    model = tiny_clip("RN50")
    state = model.state_dict()
    plain = dict(state, input_resolution=224, context_length=77, vocab_size=500)  # OpenAI's extra int entries
    torch.save(plain, tmp_path / "RN50.pt")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}, tmp_path / "oc.pt")
    for name in ("RN50.pt", "oc.pt"):
        read = read_clip_state_dict(str(tmp_path / name))
        assert set(read) == set(state) and all(torch.equal(read[k], state[k]) for k in state)
    assert dims_from_state_dict(state).vision_layers == (1, 1, 1, 1)


@pytest.mark.parametrize("content,match", [
    (None, "not a file"),
    (b"not a checkpoint", "Cannot read"),
    ({"visual.conv1.weight": torch.zeros(1)}, "not a CLIP state dict"),
])
def test_bad_files_are_clear_errors(tmp_path, content, match):
    path = tmp_path / "w.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=match):
        read_clip_state_dict(str(path))


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"state_dict": torch.nn.Linear(2, 2)}, tmp_path / "obj.pt")  # a module, not tensors
    with pytest.raises(CheckpointError, match="Cannot read"):
        read_clip_state_dict(str(tmp_path / "obj.pt"))


def clipreid_cfg(path, name="ViT-B-16", stride=16):
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.DEVICE, cfg.MODEL.PRETRAIN_PATH = "CLIPReID", "cpu", str(path)
    cfg.MODEL.CLIP.NAME, cfg.MODEL.CLIP.STRIDE_SIZE = name, stride
    cfg.MODEL.HEADS.NUM_CLASSES = 5
    cfg.INPUT.SIZE_TRAIN = cfg.INPUT.SIZE_TEST = [64, 32]
    return cfg


@pytest.mark.parametrize("stride,grid", [(16, (4, 2)), (12, (5, 2))])
def test_vit_tower_from_openai_file(tmp_path, stride, grid):
    openai_torchscript_file(tmp_path / "ViT-B-16.pt", vocab_size=0)
    state = read_clip_state_dict(str(tmp_path / "ViT-B-16.pt"))
    model = build_model(clipreid_cfg(tmp_path / "ViT-B-16.pt", stride=stride))
    enc = model.image_encoder
    assert enc.grid_size == grid and enc.conv1.stride == (stride, stride)
    pos = state["visual.positional_embedding"]
    resized = F.interpolate(pos[1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2), size=grid, mode="bilinear",
                            align_corners=False).permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
    assert torch.equal(enc.positional_embedding, torch.cat([pos[:1], resized]))
    own = model.state_dict()
    for key in ("visual.conv1.weight", "visual.proj", "visual.transformer.resblocks.1.mlp.c_fc.weight"):
        assert torch.equal(own["image_encoder." + key[len("visual."):]], state[key])
    for key in ("transformer.resblocks.0.attn.in_proj_weight", "text_projection", "ln_final.weight"):
        assert torch.equal(own["text_encoder." + key], state[key])
    ids = model.prompt_learner.tokens[0]
    assert torch.equal(model.prompt_learner.token_prefix[0], state["token_embedding.weight"][ids[:5]])
    assert not any(k.startswith(("logit_scale", "token_embedding")) for k in own)
    model.eval()
    with torch.no_grad():
        out = enc(torch.randn(2, 3, 64, 32))
    assert out.x11.shape == (2, 1 + grid[0] * grid[1], 64) and out.xproj.shape == (2, 1 + grid[0] * grid[1], 32)
    assert model({"images": torch.randn(2, 3, 64, 32)}).shape == (2, 96)


def test_rn50_tower_runs_layer4_at_stride_one(tmp_path):
    torch.save(tiny_clip("RN50", vocab_size=0).state_dict(), tmp_path / "RN50.pt")
    model = build_model(clipreid_cfg(tmp_path / "RN50.pt", name="RN50")).eval()
    enc = model.image_encoder
    assert enc.attnpool.positional_embedding.shape == (1 + 4 * 2, 128)
    with torch.no_grad():
        out = enc(torch.randn(2, 3, 64, 32))
    assert out.x3.shape[-2:] == out.x4.shape[-2:] == (4, 2) and out.xproj.shape == (2, 32)
    assert model({"images": torch.randn(2, 3, 64, 32)}).shape == (2, 128 + 32)


def test_architecture_mismatch_is_a_config_error(tmp_path):
    from agreid.config import ConfigError

    torch.save(tiny_clip("RN50").state_dict(), tmp_path / "RN50.pt")
    with pytest.raises(ConfigError, match="ResNet"):
        build_model(clipreid_cfg(tmp_path / "RN50.pt", name="ViT-B-16"))
