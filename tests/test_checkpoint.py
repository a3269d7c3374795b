"""Atomic checkpoint writes, weights-only loading, key reports and RNG round trips."""
import os

import pytest
import torch

from agreid.utils.errors import CheckpointError
from torch import nn

from agreid.utils.checkpoint import (Checkpointer, atomic_torch_save, get_rng_state, load_checkpoint_file,
                                     load_model_weights, set_rng_state)


class Net(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.backbone = nn.Linear(4, 5)
        self.bn = nn.BatchNorm1d(5)
        if classes:
            self.classifier = nn.Linear(5, classes)


def test_atomic_save_keeps_old_file_when_write_fails(tmp_path):
    path = str(tmp_path / "ckpt.pth")
    atomic_torch_save({"a": torch.ones(2)}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"a": torch.zeros(2), "b": Boom()}, path)
    assert torch.equal(load_checkpoint_file(path)["a"], torch.ones(2))
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_weights_only_rejects_arbitrary_objects(tmp_path):
    path = str(tmp_path / "evil.pth")
    torch.save({"x": Net()}, path)
    with pytest.raises(RuntimeError, match="weights-only"):
        load_checkpoint_file(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint_file(str(tmp_path / "none.pth"))
    (tmp_path / "trunc.pth").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(RuntimeError, match="Cannot read checkpoint"):
        load_checkpoint_file(str(tmp_path / "trunc.pth"))


def test_key_report_mismatch_missing_unexpected():
    src = Net(classes=3)
    sd = dict(src.state_dict())
    sd["backbone.weight"] = torch.zeros(6, 4)
    sd["extra.weight"] = torch.zeros(1)
    del sd["bn.bias"]
    dst = Net(classes=0)
    with pytest.raises(CheckpointError, match=r"1 model tensors missing.*bn.bias.*1 of another shape"):
        load_model_weights(dst, sd)
    report = load_model_weights(dst, sd, allow_partial=True)
    assert report["mismatched"] == ["backbone.weight: checkpoint (6, 4) vs model (5, 4)"]
    assert report["missing"] == ["bn.bias"]
    assert report["unexpected"] == ["extra.weight"]
    assert sorted(report["unused_classifier"]) == ["classifier.bias", "classifier.weight"]
    assert torch.equal(dst.backbone.bias, src.backbone.bias)


def test_weights_must_fit_except_a_classifier_of_another_class_count():
    src = Net(classes=3)
    other = Net(classes=7)
    report = load_model_weights(other, src.state_dict())
    assert sorted(report["classifier_skipped"])[0].startswith("classifier.bias: checkpoint (3,)")
    assert torch.equal(other.backbone.weight, src.backbone.weight)
    with pytest.raises(CheckpointError, match="No tensor"):
        load_model_weights(other, {"foo.weight": torch.zeros(2)})


def test_checkpointer_resume_or_load(tmp_path):
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.classifier(model.bn(model.backbone(torch.randn(4, 4)))).sum().backward()
    opt.step()
    ck = Checkpointer(model, str(tmp_path), optimizer=opt)
    ck.save("model_0001", epoch=0)
    ck.save("model_best", mark_last=False, epoch=0)
    assert ck.last_checkpoint().endswith("model_0001.pth")
    model2 = Net()
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    extra, resumed = Checkpointer(model2, str(tmp_path), optimizer=opt2).resume_or_load("", resume=True)
    assert resumed and extra["epoch"] == 0
    assert torch.equal(model2.backbone.weight, model.backbone.weight)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_rng_state_round_trip(tmp_path):
    import random

    import numpy as np

    state = get_rng_state()
    path = str(tmp_path / "rng.pth")
    atomic_torch_save({"rng": state}, path)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint_file(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_saved_constant_of_an_older_model_is_not_unexpected():
    """A fixed GeM exponent is a constant (non-persistent buffer); files that saved it still load cleanly."""
    from agreid.modeling.heads.pooling import GeMPool

    model = nn.Sequential(nn.Linear(2, 2))
    model.add_module("pool", GeMPool(3.0))
    state = dict(model.state_dict())
    assert "pool.p" not in state
    state["pool.p"] = torch.tensor(3.0)
    report = load_model_weights(model, state)
    assert report["unexpected"] == [] and report["missing"] == []
