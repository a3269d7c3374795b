"""Multi-stage training: stages run in order with their own solver, caches are computed once, resume continues
inside the interrupted stage and ends on the weights of an uninterrupted run."""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine_helpers import DEMO_CONFIG, assert_same_weights, final_weights, interrupt_then_resume, run_cli, tiny_opts

from agreid.modeling.stages import StageSpec, freeze_all_but
from agreid.registries import META_ARCH_REGISTRY
from agreid.utils.checkpoint import load_checkpoint_file

CALLS = {"cache": 0, "stats": 0}


class StagedProbe(nn.Module):
    """A three-stage model shaped like CLIP-ReID / TF-CLIP: "stats" (no epochs: a buffer from the initial
    encoder), "proto" (prototypes trained on cached features, everything else frozen), "train" (images)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.prototypes = nn.Parameter(torch.randn(num_classes, 8) * 0.1)
        self.classifier = nn.Linear(8, num_classes)
        self.register_buffer("center", torch.zeros(8))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self.stage = "train"

    def on_epoch_end(self, epoch):  # per-epoch state (like online label smoothing's soft targets)
        self.epochs_seen += 1

    def training_stages(self):
        return [StageSpec("stats", epochs=0), StageSpec("proto", solver="STAGE1", data="custom"), StageSpec("train")]

    def encode(self, images):
        return self.encoder(images) - self.center

    @torch.no_grad()
    def _features(self, ctx):
        CALLS["cache"] += 1
        feats, targets = [], []
        for batch in ctx.inference_loader(ctx.train_records):
            feats.append(self.encode(batch["images"]))
            targets.append(batch["targets"])
        return {"features": torch.cat(feats), "targets": torch.cat(targets)}

    def begin_stage(self, name, ctx):
        if name == "stats":
            CALLS["stats"] += 1
            with torch.no_grad():
                feats = torch.cat([self.encoder(b["images"]) for b in ctx.inference_loader(ctx.train_records)])
            self.center.copy_(feats.mean(0))
            return None
        if name == "proto":
            freeze_all_but(self, lambda n: n == "prototypes")
            data = ctx.cached("probe_features", lambda: self._features(ctx))
            return ctx.tensor_loader(data, ctx.batch_size)
        freeze_all_but(self, lambda n: n != "prototypes")
        return None

    def forward(self, batch):
        if self.stage == "proto":
            logits = batch["features"] @ self.prototypes.t()
            return {"loss_proto": F.cross_entropy(logits, batch["targets"])}
        feats = self.encode(batch["images"])
        if not self.training:
            return feats
        return {"loss_cls": F.cross_entropy(self.classifier(feats), batch["targets"]),
                "loss_align": F.cross_entropy(feats @ self.prototypes.t(), batch["targets"])}


if "StagedProbe" not in META_ARCH_REGISTRY:
    META_ARCH_REGISTRY.register("StagedProbe")(lambda cfg: StagedProbe(cfg.MODEL.HEADS.NUM_CLASSES))


def staged_opts(data_root, out):
    return tiny_opts(data_root, out, **{
        "MODEL.META_ARCHITECTURE": "StagedProbe", "SOLVER.STAGE1.MAX_EPOCH": "3", "SOLVER.STAGE1.IMS_PER_BATCH": "24",
        "SOLVER.STAGE1.WARMUP_EPOCHS": "1", "SOLVER.STAGE1.CHECKPOINT_PERIOD": "1", "SOLVER.STAGE1.BASE_LR": "0.05",
        "SOLVER.BASE_LR": "0.01", "TEST.EVAL_PERIOD": "3"})


@pytest.fixture(scope="module")
def plain_run(data_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("staged"))
    CALLS.update(cache=0, stats=0)
    results = run_cli("--config-file", DEMO_CONFIG, *staged_opts(data_root, out))
    return out, results, dict(CALLS)


def test_stages_run_in_order_with_their_outputs(plain_run):
    out, results, calls = plain_run
    assert calls == {"cache": 1, "stats": 1}
    for name in ["model_stats_final.pth", "model_proto_0001.pth", "model_proto_0002.pth", "model_proto_final.pth",
                 "model_0001.pth", "model_final.pth", "metrics_proto.json", "metrics.json",
                 os.path.join("cache", "probe_features.pth")]:
        assert os.path.isfile(os.path.join(out, name)), name
    assert set(results) == {"AGDemo/A2G", "AGDemo/G2A"}
    proto = load_checkpoint_file(os.path.join(out, "model_proto_final.pth"))
    final = load_checkpoint_file(os.path.join(out, "model_final.pth"))
    assert proto["stage"] == "proto" and final["stage"] == "train" and final["epoch"] == 2
    assert int(final["model"]["epochs_seen"]) == 6  # on_epoch_end ran after each of 3 + 3 epochs
    # the prompt-like stage trained only the prototypes; the image stage left them as they were
    stats = load_checkpoint_file(os.path.join(out, "model_stats_final.pth"))["model"]
    assert torch.equal(stats["encoder.0.weight"], proto["model"]["encoder.0.weight"])
    assert not torch.equal(stats["prototypes"], proto["model"]["prototypes"])
    assert torch.equal(proto["model"]["prototypes"], final["model"]["prototypes"])
    assert not torch.equal(proto["model"]["encoder.0.weight"], final["model"]["encoder.0.weight"])
    assert len(proto["optimizer"]["param_groups"][0]["params"]) == 1
    lines = [json.loads(line) for line in open(os.path.join(out, "metrics_proto.json"))]
    assert any("loss_proto" in line for line in lines)
    first, last = lines[0]["loss_proto"], lines[-1]["loss_proto"]
    assert last < first


@pytest.mark.parametrize("stage,epoch", [("proto", 1), ("train", 1)])
def test_interrupted_stage_resumes_to_identical_weights(plain_run, data_root, tmp_path, stage, epoch):
    def stop(t):
        if t.stage.name == stage and t.epoch == epoch and t.iter == epoch * t.iters_per_epoch + 1:
            CALLS.update(cache=0, stats=0)  # count what the resumed run recomputes
            return True
        return False

    weights = interrupt_then_resume(DEMO_CONFIG, staged_opts(data_root, str(tmp_path)), stop)
    assert CALLS == {"cache": 0, "stats": 0}, "a resumed run must not recompute earlier stages or the cache"
    assert_same_weights(weights, final_weights(plain_run[0]))


def test_own_optimizer_steps_outside_the_main_one():
    """A module with ``own_optimizer`` is stepped by its own SGD with scaled gradients, not by the main one."""
    from agreid.engine.train_loop import SimpleTrainer
    from agreid.solver import OwnOptimizers, optimizer_from_config
    from agreid.config import get_cfg

    class Centers(nn.Module):
        def __init__(self):
            super().__init__()
            self.centers = nn.Parameter(torch.zeros(3, 4))
            self.own_optimizer = {"lr": 0.5, "grad_scale": 2.0}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.center_loss = Centers()

        def forward(self, batch):
            f = self.fc(batch["x"])
            return {"loss_center": (f - self.center_loss.centers[batch["y"]]).pow(2).sum(1).mean()}

    torch.manual_seed(0)
    net = Net()
    own = OwnOptimizers(net)
    opt = optimizer_from_config(get_cfg(), net, exclude=own.param_ids())
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(net.fc.weight), id(net.fc.bias)}
    batch = {"x": torch.randn(6, 4), "y": torch.tensor([0, 1, 2, 0, 1, 2])}
    trainer = SimpleTrainer(net, [batch], opt)
    trainer.own_optimizers = own
    trainer.iters_per_epoch = 1
    before = net.center_loss.centers.detach().clone()
    loss = net(batch)["loss_center"]
    grad, = torch.autograd.grad(loss, net.center_loss.centers)
    from agreid.utils.events import EventStorage

    with EventStorage(0):
        trainer.run_step()
    assert torch.allclose(net.center_loss.centers, before - 0.5 * 2.0 * grad, atol=1e-6)
    assert set(trainer.state_dict()) == {"optimizer", "own_optimizers"}
