"""The training loop's hook order, NaN stop and gradient clipping, on a toy model."""
import pytest
import torch
from torch import nn

from agreid.engine import HookBase, SimpleTrainer


class Toy(nn.Module):
    def __init__(self, value=None):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.value = value

    def forward(self, batch):
        loss = (self.w * batch["x"]).sum() ** 2
        return {"loss_a": loss if self.value is None else loss * self.value}


def loader(n=4):
    return [{"x": torch.full((3,), float(i + 1))} for i in range(n)]


class Recorder(HookBase):
    def __init__(self, log):
        self.log = log

    def before_train(self):
        self.log.append("before_train")

    def before_epoch(self):
        self.log.append(f"before_epoch{self.trainer.epoch}")

    def after_step(self):
        self.log.append(f"step{self.trainer.iter}")

    def after_epoch(self):
        self.log.append(f"after_epoch{self.trainer.epoch}")

    def after_train(self):
        self.log.append("after_train")


def test_hook_order_and_iteration_count():
    model = Toy()
    trainer = SimpleTrainer(model, loader(), torch.optim.SGD(model.parameters(), lr=1e-3))
    log = []
    trainer.register_hooks([Recorder(log)])
    trainer.train(1, 3, 2)
    assert log == ["before_train", "before_epoch1", "step2", "step3", "after_epoch1",
                   "before_epoch2", "step4", "step5", "after_epoch2", "after_train"]


def test_nan_loss_stops_training_with_the_losses():
    model = Toy(value=float("nan"))
    trainer = SimpleTrainer(model, loader(), torch.optim.SGD(model.parameters(), lr=1e-3))
    log = []
    trainer.register_hooks([Recorder(log)])
    with pytest.raises(FloatingPointError, match="loss_a"):
        trainer.train(0, 1, 2)
    assert log[-1] == "after_train"
    assert torch.equal(model.w.detach(), torch.ones(3))


def test_gradient_clipping_bounds_the_step():
    model = Toy()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = SimpleTrainer(model, loader(), opt, clip_grad={"max_norm": 0.5, "norm_type": 2.0})
    trainer.train(0, 1, 1)
    assert torch.linalg.vector_norm(model.w.detach() - torch.ones(3)) == pytest.approx(0.5, rel=1e-5)
