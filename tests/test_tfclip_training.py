"""TF-CLIP / X-TFCLIP training pieces: the CLIP-Memory stage (built once, resumed from the cache), online label
smoothing against the reference, soft-biometric masking, and a tiny forward/backward with every loss term.

``fixtures/tfclip/ols_softbio.pt`` holds six steps (two epochs) of X-TFCLIP's ``OnlineLabelSmoothing`` (logits,
labels, losses, the soft-target matrix after the second ``next_epoch``) and its four soft-biometric masks summed
for random attribute codes, produced by the reference code.
"""
import os
import zlib

import numpy as np
import pytest
import torch

from engine_helpers import model_config

from agreid.data.records import TrackletRecord
from agreid.data.video import dense_clips
from agreid.evaluation import results_markdown
from agreid.evaluation.scoring import ScoringOptions, score_features
from agreid.evaluation.soft_biometrics import GT_FLAG, SoftBiometricMask, soft_biometric_penalty
from agreid.modeling import build_model
from agreid.modeling.losses.online_label_smoothing import OnlineLabelSmoothing
from agreid.modeling.stages import model_stages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "tfclip", "ols_softbio.pt")
CONFIGS = {"tfclip": os.path.join(REPO, "configs", "AGVPReID", "tfclip.yml"),
           "xtfclip": os.path.join(REPO, "configs", "AGVPReID", "xtfclip.yml")}
T, H, W, K = 4, 64, 32, 3
TINY_CLIP = {"MODEL__CLIP__VISION_WIDTH": 64, "MODEL__CLIP__VISION_LAYERS": "[2]", "MODEL__CLIP__EMBED_DIM": 64,
             "MODEL__CLIP__TEXT_WIDTH": 64, "MODEL__CLIP__TEXT_LAYERS": 1}  # 2-block width-64 ViT, 64-d projection


def tiny_model(name="tfclip", **extra):
    cfg = model_config(CONFIGS[name], MODEL__DEVICE="cpu", MODEL__TFCLIP__TMD_HEADS=4, **TINY_CLIP,
                       MODEL__HEADS__NUM_CLASSES=K, MODEL__NUM_CAMERAS=6, MODEL__NUM_VIEWS=1, INPUT__SEQ_LEN=T,
                       INPUT__SIZE_TRAIN=f"[{H}, {W}]", INPUT__SIZE_TEST=f"[{H}, {W}]", **extra)
    torch.manual_seed(0)
    return build_model(cfg)


def frame_image(path):
    g = torch.Generator().manual_seed(zlib.crc32(path.encode()))
    return torch.randn(3, H, W, generator=g)


class FakeContext:
    """The StageContext a trainer gives ``begin_stage``: records, an in-order clip loader, a run cache."""

    def __init__(self, records, cache):
        self.device = torch.device("cpu")
        self.train_records = records
        self.batch_size = 4
        self.cache = cache
        self.computed = 0
        self.loaded_clips = 0

    def inference_loader(self, records):
        for start in range(0, len(records), 3):
            chunk = records[start:start + 3]
            self.loaded_clips += len(chunk)
            yield {"images": torch.stack([torch.stack([frame_image(f) for f in r.frames]) for r in chunk]),
                   "targets": torch.tensor([r.pid for r in chunk]), "camids": torch.tensor([r.camid for r in chunk]),
                   "indices": torch.arange(start, start + len(chunk))}

    def cached(self, key, compute):
        if key not in self.cache:
            self.computed += 1
            self.cache[key] = {k: v.clone() for k, v in compute().items()}
        return self.cache[key]

    def progress(self, iterable, desc, total=None):
        return iterable


def tracklets():
    lengths = [(0, 9), (0, 4), (1, 3), (1, 6), (2, 5)]
    return [TrackletRecord(path=f"t{i}", pid=pid, camid=i % 6, view="ground",
                           frames=tuple(f"p{pid}/t{i}/f{j}.jpg" for j in range(n)))
            for i, (pid, n) in enumerate(lengths)]


def expected_memory(model, records):
    """Dense clips → frame-mean projected CLS → tracklet mean → identity mean, computed directly."""
    feats = []
    with torch.no_grad():
        for rec in records:
            clips = torch.stack([torch.stack([frame_image(f) for f in c]) for c in dense_clips(rec.frames, T)])
            out = model.image_encoder(clips.flatten(0, 1)).xproj[:, 0].view(len(clips), T, -1).mean(1)
            feats.append(out.mean(0))
    feats = torch.stack(feats)
    pids = torch.tensor([r.pid for r in records])
    return torch.stack([feats[pids == k].mean(0) for k in range(K)])


def test_memory_stage_builds_once_and_resumes():
    model = tiny_model()
    assert [s.name for s in model_stages(model)] == ["memory", "train"]
    assert model_stages(model)[0].epochs == 0
    records = tracklets()
    ctx = FakeContext(records, cache={})
    with pytest.raises(RuntimeError, match="without a CLIP-Memory"):
        model.begin_stage("train", ctx)
    model.begin_stage("memory", ctx)
    assert ctx.computed == 1 and ctx.loaded_clips == 3 + 1 + 1 + 2 + 2  # dense clips of 9, 4, 3, 6, 5 frames
    assert model.clip_memory.is_ready
    assert torch.allclose(model.clip_memory.bank, expected_memory(model, records), atol=1e-5)
    model.begin_stage("train", ctx)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"neck_cls.bias", "neck_proj.bias", "neck_frame.bias", "neck_tmd.bias"}
    # a resumed run asks again: the cache answers, nothing is recomputed
    resumed = tiny_model()
    ctx2 = FakeContext(records, cache=ctx.cache)
    resumed.begin_stage("memory", ctx2)
    assert ctx2.computed == 0 and ctx2.loaded_clips == 0
    assert torch.equal(resumed.clip_memory.bank, model.clip_memory.bank)
    # and the memory lives in the checkpoint
    fresh = tiny_model()
    fresh.load_state_dict(model.state_dict())
    assert fresh.clip_memory.is_ready and torch.equal(fresh.clip_memory.bank, model.clip_memory.bank)


def test_memory_file_skips_the_build(tmp_path):
    bank = torch.randn(K, 64)
    torch.save({"clip_memory": bank}, tmp_path / "mem.pt")
    model = tiny_model(MODEL__TFCLIP__MEMORY_FILE=str(tmp_path / "mem.pt"))
    ctx = FakeContext(tracklets(), cache={})
    model.begin_stage("memory", ctx)
    assert ctx.computed == 0 and torch.equal(model.clip_memory.bank, bank)
    torch.save(torch.randn(K + 1, 64), tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not fit"):
        tiny_model(MODEL__TFCLIP__MEMORY_FILE=str(tmp_path / "bad.pt"))


def test_online_label_smoothing_matches_reference_and_resumes():
    fx = torch.load(FIXTURE, weights_only=True)
    ols = OnlineLabelSmoothing(fx["K"], alpha=0.5, smoothing=0.1)
    epoch, snapshot = 0, None
    for i, (logits, targets) in enumerate(zip(fx["logits"], fx["targets"])):
        if int(fx["epochs"][i]) != epoch:
            ols.next_epoch()
            epoch += 1
            snapshot = {k: v.clone() for k, v in ols.state_dict().items()}
        assert ols(logits, targets).item() == pytest.approx(fx["losses"][i].item(), rel=1e-6)
    ols.next_epoch()
    assert torch.allclose(ols.supervise, fx["supervise"], atol=1e-7)
    # resume at the epoch boundary: the saved soft targets reproduce the second epoch exactly
    resumed = OnlineLabelSmoothing(fx["K"])
    resumed.load_state_dict(snapshot)
    for i in range(3, 6):
        assert resumed(fx["logits"][i], fx["targets"][i]).item() == pytest.approx(fx["losses"][i].item(), rel=1e-6)
    resumed.next_epoch()
    assert torch.equal(resumed.supervise, ols.supervise)
    # evaluation mode does not collect statistics
    resumed.eval()
    resumed(fx["logits"][0], fx["targets"][0])
    assert float(resumed.idx_count.sum()) == 0.0


def vp_records(codes, missing=()):
    return [TrackletRecord(path=f"r{i}", pid=i, camid=0, view="aerial", frames=("f",),
                           extras={} if i in missing else {"attributes": np.asarray(c)})
            for i, c in enumerate(codes)]


def test_soft_biometric_mask_matches_reference():
    fx = torch.load(FIXTURE, weights_only=True)
    q = vp_records(fx["query_attributes"].numpy())
    g = vp_records(fx["gallery_attributes"].numpy(), missing=(fx["gallery_missing"],))
    penalty = soft_biometric_penalty(q, g, SoftBiometricMask())
    assert torch.equal(penalty, fx["mask"])
    assert penalty[:, fx["gallery_missing"]].abs().sum() == 0


def test_soft_biometrics_change_only_known_different_pairs():
    unknown = [2, 8, 4, 3, 4, 6, 5, 2, 2, 3, 4, 12, 9, 6, 8]
    same = [0, 3, 1, 1, 0] + [0] * 10
    other_gender = [1, 3, 1, 1, 0] + [0] * 10
    unknown_gender = [2, 3, 1, 1, 0] + [0] * 10
    other_height_only = [0, 3, 0, 1, 0] + [0] * 10  # column 2 (height) is not compared
    q = vp_records([same])
    g = [r.replace(pid=0, camid=1) for r in vp_records([same, other_gender, unknown_gender, unknown,
                                                         other_height_only, same], missing=(5,))]
    qf, gf = torch.randn(1, 8), torch.randn(6, 8)
    plain = score_features(qf, gf, q, g, "market", ScoringOptions(metric="euclidean"))
    masked = score_features(qf, gf, q, g, "market", ScoringOptions(metric="euclidean",
                                                                    soft_biometrics=SoftBiometricMask()))
    penalty = soft_biometric_penalty(q, g, SoftBiometricMask())
    assert penalty.tolist() == [[0.0, 100.0, 0.0, 0.0, 0.0, 0.0]]
    assert masked[GT_FLAG] == 1.0 and GT_FLAG not in plain
    assert "[GT attributes]" in results_markdown({"AGVPReID/A2G": masked})
    assert "[GT attributes]" not in results_markdown({"AGVPReID/A2G": plain})


@pytest.mark.parametrize("name", ["tfclip", "xtfclip"])
def test_forward_backward_every_loss(name):
    model = tiny_model(name)
    model.clip_memory.set(torch.randn(K, 64))
    model.train()
    g = torch.Generator().manual_seed(1)
    batch = {"images": torch.randn(4, T, 3, H, W, generator=g), "targets": torch.tensor([0, 0, 2, 2]),
             "camids": torch.tensor([0, 1, 4, 5]), "views": torch.zeros(4, dtype=torch.long)}
    losses = model(batch)
    assert set(losses) == {"loss_id", "loss_triplet", "loss_memory", "loss_frame"}
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for used in ("image_encoder.conv1.weight", "sie_embed", "tmd.resblocks.0.message_fc.weight",
                 "ssp.decoder.0.cross_attn.q_proj.weight", "classifier_tmd.weight"):
        assert grads[used] is not None and grads[used].abs().sum() > 0, used
    for unused in ("classifier_tmd_unused.weight", "ssp.alpha", "ssp.norm.weight"):
        assert grads[unused] is None, unused
    if name == "xtfclip":
        for extra in ("video_embed", "memory_alpha", "pool_memory_tokens.attn_mlp.0.weight"):
            assert grads[extra] is not None and grads[extra].abs().sum() > 0, extra
        w = grads["classifier_tmd.weight"]  # gradient centralization: rows of >1-D gradients have zero mean
        assert w.mean(dim=1).abs().max() <= 1e-6 * w.abs().max()
        before = model.id_loss.supervise.clone()
        from agreid.engine.hooks.model_epoch import ModelEpochEnd

        hook = ModelEpochEnd()
        hook.trainer = type("Trainer", (), {"model": model, "epoch": 0})()
        hook.after_epoch()  # the engine's epoch-end hook reaches both OLS modules
        assert not torch.equal(model.id_loss.supervise, before) and float(model.id_loss.idx_count.sum()) == 0
        assert float(model.frame_loss.idx_count.sum()) == 0
    assert set(model.param_lr_factors()) == {"classifier_tmd.weight", "classifier_tmd_unused.weight"}


def test_staged_training_on_a_miniature_agvpreid(tmp_path):
    """The real trainer: memory stage (cached), one training epoch, tracklet evaluation of both protocols."""
    import argparse

    from test_dataset_agvpreid import TRACKLETS, frame_name, write_image

    from agreid.engine import DefaultTrainer, default_setup, setup_cfg

    data = tmp_path / "data" / "AG-VPReID"
    for n, (split, pid, cam, frames) in enumerate(TRACKLETS):
        for f in range(frames):
            write_image(data / split / str(pid) / f"tracklet_{n:02d}" / frame_name(pid, cam, f))
    opts = {"DATASETS.ROOT_DIR": str(tmp_path / "data"), "OUTPUT_DIR": str(tmp_path / "out"), "MODEL.DEVICE": "cpu",
            **{k.replace("__", "."): str(v) for k, v in TINY_CLIP.items()}, "MODEL.TFCLIP.TMD_HEADS": "4",
            "INPUT.SEQ_LEN": "2", "INPUT.SIZE_TRAIN": "[64, 32]",
            "INPUT.SIZE_TEST": "[64, 32]", "SOLVER.IMS_PER_BATCH": "4", "DATALOADER.NUM_INSTANCE": "2",
            "DATALOADER.NUM_WORKERS": "0", "SOLVER.MAX_EPOCH": "1", "SOLVER.ITERS_PER_EPOCH": "2",
            "TEST.EVAL_PERIOD": "1", "TEST.IMS_PER_BATCH": "4", "SOLVER.CHECKPOINT_PERIOD": "1"}
    flat = [x for kv in opts.items() for x in kv]
    cfg = default_setup(setup_cfg(CONFIGS["xtfclip"], flat), argparse.Namespace())
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    assert set(results) == {"AGVPReID/A2G", "AGVPReID/G2A"}
    assert os.path.isfile(tmp_path / "out" / "cache" / "tfclip_clip_memory.pth")
    state = torch.load(tmp_path / "out" / "model_final.pth", weights_only=True)["model"]
    assert bool(state["clip_memory.ready"]) and state["clip_memory.bank"].abs().sum() > 0
    assert not torch.equal(state["id_loss.supervise"], OnlineLabelSmoothing(3).supervise)  # epoch-end update ran


def test_memory_readiness_follows_set_and_load():
    """``is_ready`` (checked every training step) reads the device flag once per set / load, and stays right."""
    from agreid.modeling.layers.clip_memory import ClipMemory

    built, fresh = ClipMemory(3, 4), ClipMemory(3, 4)
    assert not built.is_ready
    built.set(torch.randn(3, 4))
    assert built.is_ready
    fresh.load_state_dict(built.state_dict())
    assert fresh.is_ready and torch.equal(fresh.bank, built.bank)
    built.load_state_dict(ClipMemory(3, 4).state_dict())
    assert not built.is_ready
