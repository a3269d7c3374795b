"""SVPR-ReID: reference parity (eval feature, train-mode loss terms), quirk switches, parameter counts, loading
reference checkpoints (converter), the 128-patch error, and a tiny training run through tools/train_net.py.

``fixtures/svpr/tiny_svpr.pt`` was produced by the reference code (ahu-xhao/SVPR-ReID ``CLIP_SVPR_ReID``, run on the
CPU) from a tiny random CLIP in the OpenAI layout (ViT: 2 layers, width 64, patch 4, pretrained grid 7×7; text: 2
layers, width 64, context 77 → 100; joint width 64) at 64×32 input with stride 4 (16×8 = 128 patches, as the
reference's local branch needs), 6 identities and 3 attributes (3, 4, 5 classes). It holds the reference's
perturbed ``model.state_dict()`` (fp16, values exactly representable) without the two copies of the token embedding
(stored as its non-zero rows, the only ones the texts use) and with CVPR's shared block once, uint8 pixels, labels,
SVPR view labels, caption tokens, and the reference's eval features (the batch, each image alone, view labels
flipped) and ID / triplet / view / attribute losses (train mode, dropout off). Runtime patches of the reference:
CUDA → CPU, "blocks[:-1] / blocks[-1]" for its "[:11] / [11]", widths and patch size of the tiny CLIP for its
hard-coded 768 / 512 / 16.
"""
import json
import os

import pytest
import torch

from ag_image_helpers import write_jpeg, write_list
from engine_helpers import load_script, model_config, run_cli

from agreid.config import ConfigError
from agreid.modeling import build_model
from agreid.modeling.conversion import convert_reference_state
from agreid.registries import META_ARCH_REGISTRY
from agreid.utils.checkpoint import Checkpointer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "CP2108", "svpr.yml")
FIXTURE = os.path.join(REPO, "tests", "fixtures", "svpr", "tiny_svpr.pt")
CP2108_ATTRIBUTES = ["Accessories", "Feet", "Glasses", "Head Accessories", "Holding Phone", "Lower Clothing",
                     "Lower Color", "Lower Style", "Pose", "Upper Clothing", "Upper Color", "Upper Style"]


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURE, weights_only=True)


def tiny_overrides(fx, **extra):
    d = fx["dims"]
    size = f"[{fx['size'][0]}, {fx['size'][1]}]"
    opts = {"MODEL__DEVICE": "cpu", "MODEL__PRETRAIN_PATH": "", "MODEL__CLIP__EMBED_DIM": d["embed"],
            "MODEL__CLIP__VISION_LAYERS": f"[{d['vl']}]", "MODEL__CLIP__VISION_WIDTH": d["vw"],
            "MODEL__CLIP__VISION_PATCH_SIZE": d["patch"], "MODEL__CLIP__VISION_GRID": d["grid"],
            "MODEL__CLIP__TEXT_WIDTH": d["tw"], "MODEL__CLIP__TEXT_LAYERS": d["tl"],
            "MODEL__CLIP__STRIDE_SIZE": fx["stride"], "INPUT__SIZE_TRAIN": size, "INPUT__SIZE_TEST": size}
    opts.update(extra)
    return opts


def tiny_model(fx, named=True, **extra):
    extra = {"MODEL__ATTRIBUTE_CLASSES": str(fx["attribute_classes"]), **extra}
    opts = tiny_overrides(fx, MODEL__HEADS__NUM_CLASSES=fx["num_classes"], **extra)
    if named and extra["MODEL__ATTRIBUTE_CLASSES"] != "[]":
        opts["MODEL__ATTRIBUTE_NAMES"] = json.dumps(fx["attribute_names"])
    return build_model(model_config(CONFIG, **opts))


def reference_state(fx, prefix=""):
    """The reference checkpoint as its training loop saved it (fp32; token embedding and shared blocks restored)."""
    sd = {k: v.float() if v.is_floating_point() else v for k, v in fx["state_dict"].items()}
    emb = torch.zeros(fx["vocab_size"], fx["token_rows"].shape[1])
    emb[fx["token_ids"]] = fx["token_rows"].float()
    sd["BACKBONE.token_embedding.weight"] = sd["TextNet.view_promptlearner.token_embedding.weight"] = emb
    for key in [k for k in sd if k.startswith("CVPRNet.blocks.0.")]:
        for i in (1, 2):
            sd[key.replace("blocks.0.", f"blocks.{i}.")] = sd[key]
    return {prefix + k: v for k, v in sd.items()}


def loaded(fx, tmp_path, named=True, prefix="", **extra):
    model = tiny_model(fx, named, **extra)
    path = str(tmp_path / "ViT-B-16_120.pth")
    torch.save(reference_state(fx, prefix), path)
    Checkpointer(model, str(tmp_path)).load(path, checkpointables=[])
    return model


def batch_of(fx, train=False):
    images = (fx["pixels"].float() / 255 - 0.5) / 0.5
    b = len(images)
    captions = fx["train_captions"] if train else fx["test_captions"].expand(b, -1)
    batch = {"images": images, "targets": fx["targets"], "svpr_views": fx["svpr_views"],
             "captions": captions.long()}
    if train:
        batch["attribute_labels"] = fx["attribute_labels"]
    return batch


def close(a, b, tol=1e-4):
    return a.shape == b.shape and (a - b).abs().max().item() <= tol * b.abs().max().item()


def test_eval_feature_matches_reference(fx, tmp_path):
    model = loaded(fx, tmp_path).eval()
    batch = batch_of(fx)
    with torch.no_grad():
        feat = model(batch)
        flipped = model(dict(batch, svpr_views=1 - batch["svpr_views"]))
    assert feat.shape == (8, 4 * fx["dims"]["vw"])  # cls ‖ cvpr ‖ local ‖ attribute, pre-BN
    assert close(feat, fx["eval_feature"]) and close(flipped, fx["eval_feature_flipped_views"])
    assert not close(feat, fx["eval_feature_single"])  # the reference's feature depends on the batch
    with pytest.raises(ValueError, match="captions=svpr"):
        model({k: v for k, v in batch.items() if k != "captions"})


def test_batch_context_fix_equals_each_image_alone(fx, tmp_path):
    model = loaded(fx, tmp_path, MODEL__SVPR__CVPR_BATCH_CONTEXT=False).eval()
    with torch.no_grad():
        feat = model(batch_of(fx))
    assert close(feat, fx["eval_feature_single"])


def test_train_losses_match_reference(fx, tmp_path):
    model = loaded(fx, tmp_path, MODEL__SVPR__PROMPT_DROPOUT=0.0).train()
    losses = model(batch_of(fx, train=True))
    assert set(losses) == {"loss_cls", "loss_triplet", "loss_view", "loss_attr"}
    for key, ref in (("loss_cls", "loss_id"), ("loss_triplet", "loss_tri"), ("loss_view", "loss_view"),
                     ("loss_attr", "loss_attr")):
        assert losses[key].item() == pytest.approx(fx[ref].item(), rel=1e-5), key
    assert sum(losses.values()).item() == pytest.approx(fx["loss_total"].item(), rel=1e-5)
    sum(losses.values()).backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert "BACKBONE.visual.conv1.weight" in grads and "TextNet.view_prompt" in grads
    assert "ASMOE.attributesPrompt" in grads and "CVPRNet.blocks.0.cross_attn2.v_.weight" in grads
    assert not any(n.startswith(("BACKBONE.transformer.", "BACKBONE.token_embedding")) for n in grads)


def test_parameter_counts_equal_reference(fx):
    cfg = model_config(CONFIG, MODEL__HEADS__NUM_CLASSES=1054, MODEL__ATTRIBUTE_NAMES=json.dumps(
        CP2108_ATTRIBUTES), MODEL__ATTRIBUTE_CLASSES=str(list(range(3, 15))), MODEL__PRETRAIN_PATH="")
    with torch.device("meta"):
        model = META_ARCH_REGISTRY.get("SVPR")(cfg)
    params = list(model.parameters())
    assert sum(p.numel() for p in params) == 202_695_431
    assert sum(p.numel() for p in params if p.requires_grad) == 139_243_271
    assert len(model.state_dict()) == 588 and model.local_weight.shape == (128, 768)
    tiny = tiny_model(fx)
    assert sum(p.numel() for p in tiny.parameters()) == fx["stats"]["total"]
    assert sum(p.numel() for p in tiny.parameters() if p.requires_grad) == fx["stats"]["trainable_params"]
    assert len(tiny.state_dict()) == fx["stats"]["tensors"]


def test_local_branch_needs_its_patch_count(fx):
    with pytest.raises(ConfigError, match=r"128-patch weight .* 8x4 = 32 patches"):
        tiny_model(fx, MODEL__CLIP__STRIDE_SIZE=8)
    model = tiny_model(fx, MODEL__CLIP__STRIDE_SIZE=8, MODEL__SVPR__LOCAL_PATCHES=0)
    assert model.local_weight.shape[0] == 32


def test_build_without_data_and_converter(fx, tmp_path):
    # attribute names absent from the config: the heads are matched by position
    model = loaded(fx, tmp_path, named=False, prefix="module.").eval()
    assert model.attribute_names == ["attribute_0", "attribute_1", "attribute_2"]
    with torch.no_grad():
        assert close(model(batch_of(fx)), fx["eval_feature"])
    state = reference_state(fx)
    assert convert_reference_state(state, tiny_model(fx, named=False)).format == "SVPR-ReID"
    two_views = tiny_model(fx, MODEL__SVPR__VIEW_CLASSES=2)
    converted = convert_reference_state({k: v for k, v in state.items() if not k.startswith("CVPRNet.blocks.2.")},
                                        two_views)
    assert converted.state_dict["header_view.classifier.weight"].shape[0] == 2
    assert torch.equal(converted.state_dict["CVPRNet.blocks.2.norm1.weight"], state["CVPRNet.blocks.0.norm1.weight"])
    no_attributes = tiny_model(fx, MODEL__ATTRIBUTE_CLASSES="[]")
    converted = convert_reference_state({k: v for k, v in state.items() if "view_promptlearner.token_view" not in k},
                                        no_attributes)
    assert converted.dead and all(k.startswith("ASMOE.") for k in converted.dead)


def test_convert_checkpoint_tool(fx, tmp_path):
    from agreid.utils.checkpoint import load_checkpoint_file

    src, dst = str(tmp_path / "transformer_best.pth"), str(tmp_path / "agreid.pth")
    torch.save(reference_state(fx), src)
    opts = tiny_overrides(fx, MODEL__HEADS__NUM_CLASSES=fx["num_classes"],
                          MODEL__ATTRIBUTE_CLASSES=str(fx["attribute_classes"]))
    flat = [x for k, v in opts.items() for x in (k.replace("__", "."), str(v))]
    report = load_script(os.path.join("tools", "convert_checkpoint.py")).convert(CONFIG, src, dst, flat)
    assert report["format"] == ["SVPR-ReID"]
    saved = load_checkpoint_file(dst)
    model = tiny_model(fx, named=False).eval()
    model.load_state_dict(saved["model"])
    with torch.no_grad():
        assert close(model(batch_of(fx)), fx["eval_feature"])


def test_captions_of_the_data_layer_are_the_reference_tokens(fx):
    from agreid.data.captions import CaptionOptions, shared_tokenizer

    tok = shared_tokenizer(100)
    for text, ids in zip(fx["train_caption_texts"], fx["train_captions"]):
        assert tok(text).tolist() == ids.tolist()
    assert tok(CaptionOptions().test_caption()).tolist() == fx["test_captions"][0].tolist()


def test_view_words_and_their_switch(fx):
    from agreid.modeling.backbones.clip_text import tokenize

    model = tiny_model(fx)
    builder = model.TextNet.view_promptlearner
    emb = model.BACKBONE.token_embedding.weight.detach()
    ground, aerial, eot = tokenize("ground aerial", 100)[0, 1:4].tolist()
    words = builder.view_words(torch.tensor([0, 1, 2]))
    assert torch.equal(words, emb[[ground, aerial, eot]])  # label 2 (AG-ReID.v2 UAV): end of text (reference)
    fixed = tiny_model(fx, MODEL__SVPR__VIEW_WORD_INDEX="[0, 1, 1]").TextNet.view_promptlearner
    fixed.token_view.copy_(builder.token_view)
    assert torch.equal(fixed.view_words(torch.tensor([2])), emb[[aerial]])


def test_cvpr_switches():
    from agreid.modeling.layers.cvpr import ContextVisionRefinement

    torch.manual_seed(0)
    cls, patches, token, attr = torch.randn(3, 32), torch.randn(3, 32, 32), torch.randn(3, 1, 32), torch.randn(3, 32)
    perm = torch.randperm(32)
    for scatter_by_score in (False, True):
        net = ContextVisionRefinement(32, num_heads=4, scatter_by_score=scatter_by_score).eval()
        with torch.no_grad():
            tok, upd, touched = net(cls, patches, token, attr)
            tok_p, upd_p, touched_p = net(cls, patches[:, perm], token, attr)
        assert torch.allclose(tok, tok_p, atol=1e-5) and torch.equal(touched[:, perm], touched_p)
        assert touched.sum(1).tolist() == [16, 16, 16] and torch.equal(upd[~touched], patches[~touched])
        # corrected: each refined patch stays at its place (the result follows a reordering of the patches)
        assert torch.allclose(upd[:, perm], upd_p, atol=1e-5) != scatter_by_score
    net = ContextVisionRefinement(32, num_heads=4, batch_context=False).eval()
    with torch.no_grad():
        alone = torch.cat([net(cls[i:i + 1], patches[i:i + 1], token[i:i + 1], attr[i:i + 1])[0] for i in range(3)])
        assert torch.allclose(net(cls, patches, token, attr)[0], alone, atol=1e-5)


# ---------------------------------------------------------------------------- training through train_net
def make_cp2108_svpr(root):
    """A CP2108 layout with 4 training identities (2 ground + 2 aerial images each), 3 attributes, captions."""
    d = root / "CP2108"
    images = d / "images_v100"
    lines = {"train": [f"train/{p:04d}_{c:02d}_1_1_{i:04d}.jpg" for p in range(1, 5)
                       for i, c in enumerate((3, 5, 24, 30))],
             "query": [f"query/{p:04d}_{c:02d}_1_1_0001.jpg" for p, c in ((10, 24), (11, 5))],
             "gallery": [f"gallery/{p:04d}_{c:02d}_1_1_0002.jpg" for p, c in ((10, 4), (10, 25), (11, 26), (12, 6))]}
    for split, names in lines.items():
        write_list(d / "split_v100" / f"{split}_v100.txt", names)
        for name in names:
            pid = int(name.split("/")[1][:4])
            write_jpeg(images / name, (64, 32), (37 * pid % 256, 91 * pid % 256, 53 * pid % 256))
    index = {"Feet": {"shoes": 0, "boots": 1, "sandals": 2}, "Glasses": {"no": 0, "yes": 1},
             "Pose": {"front": 0, "back": 1, "side": 2, "unknown": 3}}
    values = [("shoes", "no", "front"), ("boots", "yes", "back"), ("sandals", "no", "side"), ("shoes", "yes", "back")]
    labels = {f"{p}_0_1": dict(zip(("Feet", "Glasses", "Pose"), values[p % 4])) for p in (1, 2, 3, 4, 10, 11, 12)}
    (d / "attributes_labeled_qwen.json").write_text(json.dumps(labels))
    (d / "attr_translation_idx.json").write_text(json.dumps(index))
    return root


def test_trains_from_the_command_line_with_every_loss_term(fx, tmp_path):
    root = make_cp2108_svpr(tmp_path / "data")
    out = str(tmp_path / "out")
    opts = {**tiny_overrides(fx), "DATASETS__ROOT_DIR": str(root), "OUTPUT_DIR": out, "SOLVER__AMP__ENABLED": False,
            "SOLVER__IMS_PER_BATCH": 8, "DATALOADER__NUM_INSTANCE": 2, "DATALOADER__NUM_WORKERS": 0,
            "SOLVER__MAX_EPOCH": 4, "SOLVER__ITERS_PER_EPOCH": 2, "SOLVER__BASE_LR": 3e-4, "SOLVER__WARMUP_EPOCHS": 1,
            "SOLVER__STEPS": "[3]", "SOLVER__LOG_PERIOD": 1, "SOLVER__CHECKPOINT_PERIOD": 4, "TEST__EVAL_PERIOD": 4,
            "TEST__IMS_PER_BATCH": 4, "INPUT__PADDING__SIZE": 2, "INPUT__REA__ENABLED": False,
            "MODEL__SVPR__PROMPT_DROPOUT": 0.0, "SEED": 0}
    flat = [x for k, v in opts.items() for x in (k.replace("__", "."), str(v))]
    results = run_cli("--config-file", CONFIG, *flat)
    assert set(results) == {"CP2108/ALL", "CP2108/AG", "CP2108/GA", "CP2108/AGAG"}
    lines = [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]
    steps = [line for line in lines if "total_loss" in line]
    assert len(steps) == 8 and all({"loss_cls", "loss_triplet", "loss_view", "loss_attr"} <= set(s) for s in steps)
    first, last = sum(s["total_loss"] for s in steps[:2]), sum(s["total_loss"] for s in steps[-2:])
    assert last < first, [s["total_loss"] for s in steps]
    saved = model_config(os.path.join(out, "config.yaml")).MODEL  # filled from the training set by the trainer
    assert list(saved.ATTRIBUTE_NAMES) == ["Feet", "Glasses", "Pose"] and list(saved.ATTRIBUTE_CLASSES) == [3, 2, 4]


@pytest.mark.parametrize("dataset, steps, tests", [
    ("CP2108", [30, 50], 4), ("AGReID", [30, 50, 80], 3), ("AGReIDv2", [30, 50, 80], 5), ("CARGO", [30, 50, 80], 6)])
def test_dataset_configs(dataset, steps, tests):
    cfg = model_config(os.path.join(REPO, "configs", dataset, "svpr.yml"))
    assert cfg.MODEL.META_ARCHITECTURE == "SVPR" and "captions=svpr" in cfg.DATASETS.OPTIONS
    assert list(cfg.SOLVER.STEPS) == steps and len(cfg.DATASETS.TESTS) == tests
    assert cfg.SOLVER.BASE_LR == 5e-6 and cfg.SOLVER.IMS_PER_BATCH == 128 and cfg.SEED == 1111
    assert cfg.MODEL.LOSSES.TRI.MARGIN == 0.0 and cfg.TEST.METRIC == "euclidean" and cfg.TEST.FEAT_NORM
