"""Learning-rate schedule values and parameter groups."""
import math

import pytest
import torch

from agreid.solver import build_lr_scheduler, lr_factor, param_groups


def test_multistep_with_linear_warmup():
    f = lambda it: lr_factor(it, 10, 5, "MultiStepLR", [2, 4], 0.1, 5, 0.1, "linear")  # noqa: E731
    assert f(0) == pytest.approx(0.1)
    assert f(5) == 1.0 and f(19) == 1.0
    assert f(20) == pytest.approx(0.1) and f(40) == pytest.approx(0.01)
    assert f(2) == pytest.approx(0.1 * 0.6 + 0.4)


def test_cosine_ends_at_eta_min():
    f = lambda it: lr_factor(it, 10, 3, "CosineAnnealingLR", [], 0.1, 0, 0.1, "linear", 0.01)  # noqa: E731
    assert f(0) == 1.0
    assert f(15) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(30) == pytest.approx(0.01)


def test_scheduler_state_resumes_exactly():
    def make():
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=1.0)
        return opt, build_lr_scheduler(opt, 4, 3, "MultiStepLR", [1, 2], 0.5, 2, 0.1, "linear", 1.0)

    opt, sched = make()
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    opt2, sched2 = make()
    for _ in range(5):
        opt2.step()
        sched2.step()
    state_o, state_s = opt2.state_dict(), sched2.state_dict()
    opt3, sched3 = make()
    opt3.load_state_dict(state_o)
    sched3.load_state_dict(state_s)
    rest = []
    for _ in range(7):
        rest.append(opt3.param_groups[0]["lr"])
        opt3.step()
        sched3.step()
    assert rest == lrs[5:]


def test_param_groups_bias_factor():
    m = torch.nn.Sequential(torch.nn.Linear(2, 2))
    groups = {g["name"]: g for g in param_groups(m, 0.1, 1e-4, bias_lr_factor=2.0, weight_decay_bias=0.0)}
    assert groups["0.bias"]["lr"] == pytest.approx(0.2) and groups["0.bias"]["weight_decay"] == 0.0
    assert groups["0.weight"]["lr"] == pytest.approx(0.1) and groups["0.weight"]["weight_decay"] == 1e-4
