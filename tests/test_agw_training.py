"""AGW recipes end to end: the per-epoch schedule against the references' formulas, two-feature evaluation and
best-checkpoint choice, command-line training on SYSU-MM01 / RegDB layouts and an aerial-ground set, and
``--eval-only`` on a reference checkpoint."""
import json
import os
from bisect import bisect_right

import numpy as np
import pytest
import torch

from engine_helpers import load_script, load_train_net, model_config
from test_agw import CONFIGS, fp32_state, load_fixture
from test_dataset_regdb import make_regdb
from test_dataset_sysu import make_sysu

from agreid.data.opencv import cv2

from agreid.data.records import ImageRecord, Protocol
from agreid.evaluation import ReidEvaluator, format_results_table, results_markdown
from agreid.solver import optimizer_from_config, scheduler_from_config

TINY = {"MODEL.DEVICE": "cpu", "MODEL.AGW.BASE_WIDTH": "4", "MODEL.LOSSES.CENTER.FEAT_DIM": "128",
        "INPUT.SIZE_TRAIN": "[64, 32]", "INPUT.SIZE_TEST": "[64, 32]", "INPUT.PADDING.SIZE": "4",
        "DATALOADER.NUM_WORKERS": "0", "SOLVER.IMS_PER_BATCH": "8", "DATALOADER.NUM_INSTANCE": "2",
        "SOLVER.LOG_PERIOD": "1", "TEST.IMS_PER_BATCH": "16", "SOLVER.CHECKPOINT_PERIOD": "100"}


def flat(**opts):
    return [x for kv in {**TINY, **opts}.items() for x in kv]


def reference_vi_lr(epoch, lr=0.1):
    """Cross-Modal-Re-ID-baseline train.py ``adjust_learning_rate``: (backbone, BNNeck / classifier) lrs."""
    if epoch < 10:
        lr_e = lr * (epoch + 1) / 10
    elif epoch < 20:
        lr_e = lr
    elif epoch < 50:
        lr_e = lr * 0.1
    else:
        lr_e = lr * 0.01
    return 0.1 * lr_e, lr_e


def warmup_multistep_lr(last_epoch, base_lr, milestones, gamma, warmup_factor, warmup_iters):
    """ReID-Survey / CLIP-ReID ``WarmupMultiStepLR.get_lr`` (linear) at the scheduler's ``last_epoch``."""
    factor = 1.0
    if last_epoch < warmup_iters:
        alpha = last_epoch / warmup_iters
        factor = warmup_factor * (1 - alpha) + alpha
    return base_lr * factor * gamma ** bisect_right(milestones, last_epoch)


def _lrs_per_epoch(cfg, model, ipe=3):
    opt = optimizer_from_config(cfg, model)
    sched = scheduler_from_config(cfg, opt, ipe)
    out = []
    for epoch in range(cfg.SOLVER.MAX_EPOCH):
        for it in range(ipe):
            if it == 0:
                out.append({g["name"]: g["lr"] for g in opt.param_groups})
            else:  # constant within an epoch
                assert {g["name"]: g["lr"] for g in opt.param_groups} == pytest.approx(out[-1])
            opt.step()
            sched.step()
    return opt, out


def test_vi_schedule_and_optimizer_match_the_reference():
    cfg = model_config(os.path.join(CONFIGS, "Base-AGW-VI.yml"), MODEL__DEVICE="cpu", MODEL__AGW__BASE_WIDTH=2,
                       MODEL__HEADS__NUM_CLASSES=4)
    from agreid.modeling import build_model

    model = build_model(cfg)
    opt, lrs = _lrs_per_epoch(cfg, model)
    assert isinstance(opt, torch.optim.SGD) and len(lrs) == 81
    assert all(g["nesterov"] and g["momentum"] == 0.9 and g["weight_decay"] == 5e-4 for g in opt.param_groups)
    heads = {n for g in opt.param_groups if g["name"].startswith("heads") for n in g["param_names"]}
    assert heads == {"heads.bottleneck.weight", "heads.classifier.weight"}  # the reference's lr-0.1 groups
    for epoch, groups in enumerate(lrs):
        backbone, head = reference_vi_lr(epoch)
        for name, lr in groups.items():
            assert lr == pytest.approx(head if name.startswith("heads") else backbone, rel=1e-9), (epoch, name)


def test_survey_schedule_matches_warmup_multistep_lr_stepped_before_each_epoch():
    cfg = model_config(os.path.join(CONFIGS, "Base-AGW.yml"), MODEL__DEVICE="cpu", MODEL__AGW__BASE_WIDTH=2,
                       MODEL__HEADS__NUM_CLASSES=4, MODEL__LOSSES__CENTER__FEAT_DIM=64)
    from agreid.modeling import build_model

    model = build_model(cfg)
    _, lrs = _lrs_per_epoch(cfg, model, ipe=2)
    assert len(lrs) == 120
    for epoch, groups in enumerate(lrs):  # ignite's EPOCH_STARTED handler steps first: last_epoch = epoch + 1
        expected = warmup_multistep_lr(epoch + 1, 3.5e-4, [40, 70], 0.1, 0.01, 10)
        assert all(lr == pytest.approx(expected, rel=1e-9) for lr in groups.values()), epoch
    # CLIP-ReID stage 2 / TF-CLIP / SVPR settings (warmup 10 epochs from x0.1, steps [30, 50])
    from agreid.solver import lr_factor

    for epoch in range(60):
        factor = lr_factor(epoch * 5 + 4, 5, 60, "WarmupMultiStepEpochLR", [30, 50], 0.1, 0, 0.1, "linear",
                           warmup_epochs=10, epoch_offset=1)
        assert factor == pytest.approx(warmup_multistep_lr(epoch + 1, 1.0, [30, 50], 0.1, 0.1, 10), rel=1e-12)


def test_warmup_iters_refused_by_the_epoch_schedule():
    from agreid.solver import lr_factor

    with pytest.raises(ValueError, match="WARMUP_EPOCHS"):
        lr_factor(0, 5, 10, "WarmupMultiStepEpochLR", [3], 0.1, 10, 0.1, "linear", warmup_epochs=2)


def test_named_features_are_scored_as_separate_tables_and_select_the_best():
    from agreid.engine.hooks import BestCheckpointer

    query = [ImageRecord(f"q{i}.jpg", i, 1) for i in range(3)]
    gallery = [ImageRecord(f"g{i}.jpg", i, 2) for i in range(3)]
    evaluator = ReidEvaluator({"toy": Protocol(tuple(query), tuple(gallery), "none")})
    evaluator.reset()
    good = torch.eye(3).repeat(2, 1)
    bad = torch.eye(3)[[1, 2, 0]]
    evaluator.process({"indices": torch.arange(6)}, {"pool": torch.cat([good[:3], bad]), "bn": good})
    results = evaluator.evaluate()
    assert set(results) == {"toy@pool", "toy@bn"}
    assert results["toy@bn"]["Rank-1"] == 100.0 and results["toy@pool"]["Rank-1"] == 0.0
    from agreid.evaluation.evaluator import average_outputs

    flipped = average_outputs({"pool": torch.ones(2, 3), "bn": torch.zeros(2, 3)}, {"pool": 3 * torch.ones(2, 3),
                                                                                   "bn": torch.ones(2, 3)})
    assert torch.equal(flipped["pool"], 2 * torch.ones(2, 3)) and torch.equal(flipped["bn"], torch.full((2, 3), 0.5))
    table = format_results_table(results)
    assert "feature 'pool'" in table and "feature 'bn'" in table and "toy@" not in table
    assert results_markdown(results).count("| protocol |") == 2

    class Saver:
        saved = []

        def save(self, name, **extra):
            self.saved.append((name, extra["best_metric"]))

    class Hook:
        latest = results

    class Trainer:
        epoch = 3

    saver = Saver()
    best = BestCheckpointer(Hook(), saver, "Rank-1@bn")
    best.trainer = Trainer()
    best.after_epoch()
    assert saver.saved == [("model_best", 100.0)]
    pool = BestCheckpointer(Hook(), saver, "Rank-1@pool")
    pool.trainer = Trainer()
    pool.after_epoch()
    assert pool.best == 0.0


def distinct_identities(root):
    """Repaint every image of the miniature layouts with a noise pattern of its identity folder (plus a little
    noise of its own), so that there is something to learn: the dataset tests paint nearly equal grey levels."""
    for folder, _, files in os.walk(root):
        for i, name in enumerate(sorted(files)):
            if name.endswith((".jpg", ".bmp")):
                pid = int(os.path.basename(folder))
                pattern = np.random.default_rng(pid).integers(0, 256, (16, 8, 3))
                noise = np.random.default_rng(1000 + i).integers(-20, 21, (16, 8, 3))
                assert cv2.imwrite(os.path.join(folder, name), np.clip(pattern + noise, 0, 255).astype(np.uint8))


def _train(tmp_path, config, root, epochs=4, **opts):
    out = str(tmp_path / "out")
    args = ["--config-file", os.path.join(CONFIGS, config),
            *flat(**{"DATASETS.ROOT_DIR": root, "OUTPUT_DIR": out, "SOLVER.MAX_EPOCH": str(epochs),
                     "SOLVER.ITERS_PER_EPOCH": "4", "TEST.EVAL_PERIOD": str(epochs), **opts})]
    train_net = load_train_net()
    results = train_net.main(train_net.default_argument_parser().parse_args(args))
    lines = [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]
    totals = [line["total_loss"] for line in lines if "total_loss" in line]
    return results, totals, out


@pytest.mark.parametrize("dataset", ["SYSU-MM01", "RegDB"])
def test_two_stream_trains_from_the_command_line(tmp_path, dataset):
    (make_sysu if dataset == "SYSU-MM01" else make_regdb)(tmp_path)
    distinct_identities(tmp_path)
    results, totals, out = _train(tmp_path, f"{dataset}/agw.yml", str(tmp_path), **{
        "SOLVER.WARMUP_EPOCHS": "0", "SOLVER.STEPS": "[100]", "SOLVER.BASE_LR": "0.0005"})
    protocols = ("SYSU_MM01/all", "SYSU_MM01/indoor") if dataset == "SYSU-MM01" else ("RegDB/V2T", "RegDB/T2V")
    assert set(results) == {f"{p}@{f}" for p in protocols for f in ("pool", "bn")}
    assert len(totals) == 16
    assert sum(totals[-4:]) / 4 < sum(totals[:4]) / 4, totals
    assert os.path.isfile(os.path.join(out, "model_best.pth")) and os.path.isfile(os.path.join(out, "model_final.pth"))
    assert "feature 'bn'" in open(os.path.join(out, "log.txt")).read()


def test_single_modality_agw_trains_with_center_loss(tmp_path):
    from agreid.data import build_dataset

    root = str(tmp_path / "data")
    build_dataset("AGDemo", root, num_train_ids=8, num_test_ids=6, images_per_view=4)
    results, totals, out = _train(tmp_path, "CARGO/agw.yml", root, **{
        "DATASETS.NAMES": "['AGDemo']", "DATASETS.TESTS": "['AGDemo']", "SOLVER.WARMUP_EPOCHS": "0",
        "SOLVER.STEPS": "[100]", "SOLVER.BASE_LR": "0.001", "SOLVER.IMS_PER_BATCH": "16",
        "DATASETS.OPTIONS": '["num_train_ids=8", "num_test_ids=6", "images_per_view=4"]'})
    assert set(results) == {"AGDemo/A2G", "AGDemo/G2A"}
    assert sum(totals[-4:]) / 4 < sum(totals[:4]) / 4, totals
    final = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    assert final["model"]["losses.2.centers"].shape == (8, 128)
    # the centres are stepped by their own SGD (lr SOLVER.CENTER_LR), never by the main Adam
    main = [n for g in final["optimizer"]["param_groups"] for n in g["param_names"]]
    assert "heads.pool.p" in main and not any("centers" in n for n in main)
    own = final["own_optimizers"]["losses.2"]
    assert own["param_groups"][0]["lr"] == 0.5


def test_eval_only_on_a_cross_modal_reference_checkpoint(tmp_path):
    fx = load_fixture("cross_modal_tiny")
    make_sysu(tmp_path)
    ref = str(tmp_path / "sysu_agw_net.pth")
    torch.save({"net": fp32_state(fx), "epoch": 10}, ref)
    out = str(tmp_path / "out")
    args = ["--config-file", os.path.join(CONFIGS, "SYSU-MM01/agw.yml"), "--eval-only",
            *flat(**{"DATASETS.ROOT_DIR": str(tmp_path), "OUTPUT_DIR": out, "MODEL.WEIGHTS": ref,
                     "MODEL.AGW.BASE_WIDTH": str(fx["base_width"]), "MODEL.HEADS.NUM_CLASSES": str(fx["num_classes"])})]
    train_net = load_train_net()
    results = train_net.main(train_net.default_argument_parser().parse_args(args))
    assert set(results) == {f"SYSU_MM01/{m}@{f}" for m in ("all", "indoor") for f in ("pool", "bn")}
    assert all(r["num_trials"] == 10 for r in results.values())
    log = open(os.path.join(out, "log.txt")).read()
    assert "converted from the agw_cross_modal format" in log and "dead weights" in log


def test_run_regdb_trials_aggregates_the_splits(tmp_path, monkeypatch):
    make_regdb(tmp_path)
    tool = load_script(os.path.join("tools", "run_regdb_trials.py"))
    calls = []

    def fake_call(cmd):  # run train_net in this process instead of a child, to stay fast
        calls.append(cmd)
        if cmd[1].endswith("train_net.py"):
            train_net = load_train_net()
            train_net.main(train_net.default_argument_parser().parse_args(cmd[2:]))
            return 0
        return load_script(os.path.join("tools", "aggregate_results.py")).main(cmd[2:])

    monkeypatch.setattr(tool.subprocess, "call", fake_call)
    out = str(tmp_path / "runs")
    code = tool.main(["--config-file", os.path.join(CONFIGS, "RegDB/agw.yml"), "--output", out, "--trials", "1,2",
                      *flat(**{"DATASETS.ROOT_DIR": str(tmp_path), "SOLVER.MAX_EPOCH": "1",
                               "SOLVER.ITERS_PER_EPOCH": "1", "TEST.EVAL_PERIOD": "1"})])
    assert code == 0 and len(calls) == 3
    assert '["RegDB:trial=2"]' in calls[1] and calls[1][-1] == os.path.join(out, "trial2")
    aggregate = json.load(open(os.path.join(out, "aggregate.json")))
    assert aggregate["RegDB/V2T@bn"]["num_runs"] == 2 and "Rank-1_std" in aggregate["RegDB/T2V@pool"]
    with pytest.raises(SystemExit):
        tool.main(["--config-file", "x.yml", "--output", out, "--trials", "1,11"])
