"""Training on two miniature datasets at once and evaluating a protocol of each (cross-dataset)."""
import argparse

from engine_helpers import DEMO_CONFIG, tiny_opts
from test_dataset_mssl import FILES, write_image

from agreid.data.build import build_train_set


def test_mixed_training_sets_and_cross_dataset_protocols(tmp_path):
    from agreid.engine import DefaultTrainer, default_setup, setup_cfg

    for folder, names in FILES.items():
        for name in names:
            write_image(tmp_path / "data" / "MSSL" / folder / name)
    options = '["AGDemo:num_train_ids=8", "AGDemo:num_test_ids=6", "AGDemo:images_per_view=4"]'
    opts = tiny_opts(str(tmp_path / "data"), str(tmp_path / "out"), **{
        "DATASETS.NAMES": '("AGDemo", "MSSL")', "DATASETS.TESTS": '("MSSL/S2G", "MSSL/DDC", "AGDemo/A2G")',
        "SOLVER.MAX_EPOCH": "1", "SOLVER.ITERS_PER_EPOCH": "2"})
    opts[opts.index("DATASETS.OPTIONS") + 1] = options
    cfg = default_setup(setup_cfg(DEMO_CONFIG, opts), argparse.Namespace())

    records, num_classes, datasets = build_train_set(["AGDemo", "MSSL"], cfg.DATASETS.ROOT_DIR,
                                                     list(cfg.DATASETS.OPTIONS))
    assert [d.name for d in datasets] == ["AGDemo", "MSSL"]
    assert num_classes == 8 + 2
    assert sorted({r.pid for r in records}) == list(range(10))
    mssl_pids = {r.pid for r in records if "/MSSL/" in r.path}
    assert mssl_pids == {8, 9}

    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    assert set(results) == {"MSSL/S2G", "MSSL/DDC", "AGDemo/A2G"}
    assert results["MSSL/S2G"]["num_query"] == 2
    for metrics in results.values():
        assert 0 <= metrics["Rank-1"] <= 100 and 0 <= metrics["mAP"] <= 100
