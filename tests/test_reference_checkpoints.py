"""Checkpoints saved by the reference code: ``--eval-only`` on them, and tools/convert_checkpoint.py."""
import os

import torch

from engine_helpers import load_script
from test_transreid import CONFIGS, batch_of, load_fixture, reference_file

from agreid.config import get_cfg
from agreid.modeling import build_model
from agreid.utils.checkpoint import Checkpointer, load_checkpoint_file


def _tool():
    return load_script(os.path.join("tools", "convert_checkpoint.py"))


def _opts(fx):
    return ["MODEL.BACKBONE.VIT.EMBED_DIM", str(fx["embed_dim"]), "MODEL.BACKBONE.VIT.DEPTH", str(fx["depth"]),
            "MODEL.BACKBONE.VIT.NUM_HEADS", str(fx["num_heads"]), "MODEL.BACKBONE.VIT.MLP_RATIO", str(fx["mlp_ratio"]),
            "MODEL.BACKBONE.VIT.DROP_PATH", "0.0", "MODEL.BACKBONE.VIT.STRIDE_SIZE", str(fx["stride"]),
            "MODEL.NUM_CAMERAS", str(fx["num_cameras"]), "MODEL.NUM_VIEWS", "1",
            "MODEL.HEADS.NUM_CLASSES", str(fx["num_classes"]),
            "INPUT.SIZE_TRAIN", str(list(fx["size"])), "INPUT.SIZE_TEST", str(list(fx["size"]))]


def test_converted_transreid_checkpoint_evaluates_like_the_reference(tmp_path):
    fx = load_fixture("tiny_jpm_sie")
    config = os.path.join(CONFIGS, "Base-TransReID-JPM-SIE.yml")
    src = reference_file(fx, str(tmp_path / "transformer_120.pth"))
    dst = str(tmp_path / "agreid.pth")
    report = _tool().convert(config, src, dst, _opts(fx))
    assert report["format"] == ["TransReID"] and report["dead"]
    saved = load_checkpoint_file(dst)
    assert saved["format"] == "TransReID" and set(saved) >= {"model", "config", "converted_from"}
    cfg = get_cfg()
    cfg.merge_from_file(config)
    cfg.merge_from_list(_opts(fx) + ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg).eval()
    Checkpointer(model, str(tmp_path)).load(dst, checkpointables=[])
    with torch.no_grad():
        feat = model(batch_of(fx))
    ref = fx["eval_feature"]
    assert (feat - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_eval_only_on_a_secap_reference_checkpoint(tmp_path):
    """train_net --eval-only MODEL.WEIGHTS <fast-reid SeCap file>: recognised, converted, evaluated."""
    from engine_helpers import load_train_net
    from test_vdt import load_fixture as load_secap

    from agreid.data import build_dataset

    fx, ref_path = load_secap("secap")
    m = fx["meta"]
    root = str(tmp_path / "data")
    build_dataset("AGDemo", root, num_train_ids=4, num_test_ids=4, images_per_view=2)
    opts = ["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.VIT.EMBED_DIM", str(m["embed_dim"]),
            "MODEL.BACKBONE.VIT.DEPTH", str(m["depth"]), "MODEL.BACKBONE.VIT.NUM_HEADS", str(m["num_heads"]),
            "MODEL.BACKBONE.VIT.STRIDE_SIZE", str(m["stride"]), "MODEL.HEADS.NUM_CLASSES", str(m["num_classes"]),
            "MODEL.SECAP.PROMPT_LEN", str(m["prompt_len"]), "INPUT.SIZE_TRAIN", str(list(m["size"])),
            "INPUT.SIZE_TEST", str(list(m["size"])), "DATASETS.ROOT_DIR", root, "DATASETS.NAMES", "['AGDemo']",
            "DATASETS.TESTS", "['AGDemo']", "DATASETS.OPTIONS",
            '["num_train_ids=4", "num_test_ids=4", "images_per_view=2"]', "DATALOADER.NUM_WORKERS", "0",
            "TEST.IMS_PER_BATCH", "16", "OUTPUT_DIR", str(tmp_path / "out"), "MODEL.WEIGHTS", ref_path]
    train_net = load_train_net()
    args = train_net.default_argument_parser().parse_args(
        ["--config-file", os.path.join(CONFIGS, "Base-SeCap.yml"), "--eval-only", *opts])
    results = train_net.main(args)
    assert set(results) == {"AGDemo/A2G", "AGDemo/G2A"}
    assert all(0 <= r["mAP"] <= 100 for r in results.values())
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "converted from the fastreid_secap format" in log and "dead weights" in log
