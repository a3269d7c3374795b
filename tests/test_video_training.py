"""The baseline trains on clips of a miniature AG-VPReID and evaluates tracklet features per protocol."""
import argparse

import torch

from engine_helpers import DEMO_CONFIG, tiny_opts
from test_dataset_agvpreid import TRACKLETS, frame_name, write_image


def test_video_baseline_trains_and_evaluates(tmp_path):
    from agreid.engine import DefaultTrainer, default_setup, setup_cfg

    data = tmp_path / "data" / "AG-VPReID"
    for n, (split, pid, cam, frames) in enumerate(TRACKLETS):
        for f in range(frames):
            write_image(data / split / str(pid) / f"tracklet_{n:02d}" / frame_name(pid, cam, f))
    opts = tiny_opts(str(tmp_path / "data"), str(tmp_path / "out"), **{
        "DATASETS.NAMES": '("AGVPReID",)', "DATASETS.TESTS": '("AGVPReID",)', "INPUT.SEQ_LEN": "2",
        "SOLVER.IMS_PER_BATCH": "4", "DATALOADER.NUM_INSTANCE": "2", "SOLVER.MAX_EPOCH": "1",
        "SOLVER.ITERS_PER_EPOCH": "2"})
    opts[opts.index("DATASETS.OPTIONS") + 1] = "[]"
    cfg = default_setup(setup_cfg(DEMO_CONFIG, opts), argparse.Namespace())
    trainer = DefaultTrainer(cfg)
    batch = next(iter(trainer.data_loader))
    assert batch["images"].shape == (4, 2, 3, 64, 32)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    assert set(results) == {"AGVPReID/A2G", "AGVPReID/G2A"}
    assert results["AGVPReID/A2G"]["num_query"] == 2
    trainer.model.eval()
    with torch.no_grad():
        feats = trainer.model({"images": batch["images"]})
    assert feats.shape == (4, 512)
