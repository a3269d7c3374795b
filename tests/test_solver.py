"""Learning-rate schedules (against fast-reid's and timm's), parameter groups, gradient clipping."""
import math

import pytest
import torch
from torch import nn

from agreid.config import get_cfg
from agreid.solver import (build_grad_clipper, build_lr_scheduler, build_optimizer, grad_clipper_from_config,
                           lr_factor, optimizer_from_config, param_groups, scheduler_from_config,
                           timm_cosine_factor)


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


def _run(sched_args, lrs, n_iters, **kw):
    """LRs of every group at iterations 0..n_iters-1 of a LambdaLR built by build_lr_scheduler."""
    params = [nn.Parameter(torch.zeros(1)) for _ in lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])
    sched = build_lr_scheduler(opt, *sched_args, **kw)
    out = []
    for _ in range(n_iters):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


class _WarmupLR(torch.optim.lr_scheduler.LRScheduler):
    """fast-reid's WarmupLR (linear): base_lr x (f (1 - i/W) + i/W) for i < W, else base_lr."""

    def __init__(self, optimizer, factor, iters):
        self.factor, self.iters = factor, iters
        super().__init__(optimizer)

    def get_lr(self):
        i = self.last_epoch
        a = i / self.iters
        m = 1.0 if i >= self.iters else self.factor * (1 - a) + a
        return [b * m for b in self.base_lrs]


def _fastreid_lrs(ipe, max_epoch, warmup, factor, eta_min, lrs):
    """Drive torch's CosineAnnealingLR and a WarmupLR the way fast-reid's hooks and train loop do."""
    params = [nn.Parameter(torch.zeros(1)) for _ in lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max_epoch - math.ceil(warmup / ipe), eta_min)
    warm = _WarmupLR(opt, factor, warmup) if warmup > 0 else None  # built second, as in build_lr_scheduler
    out, it = [], 0
    for _ in range(max_epoch):
        for _ in range(ipe):
            out.append([g["lr"] for g in opt.param_groups])
            opt.step()
            if it + 1 <= warmup:  # LRScheduler.after_step: next_iter <= warmup_iters
                warm.step()
            it += 1
        if it + 1 > warmup:  # LRScheduler.after_epoch: trainer.iter was already incremented
            cosine.step()
    return out


@pytest.mark.parametrize("ipe,max_epoch,warmup", [(7, 12, 20), (5, 10, 10), (5, 10, 0), (4, 6, 3), (3, 5, 1)])
def test_warmup_cosine_epoch_matches_fastreid_hooks(ipe, max_epoch, warmup):
    lrs = [0.008, 0.016]
    args = (ipe, max_epoch, "WarmupCosineEpochLR", [], 0.1, warmup, 0.01, "linear", 0.008, 1.6e-4)
    mine = _run(args, lrs, ipe * max_epoch)
    ref = _fastreid_lrs(ipe, max_epoch, warmup, 0.01, 1.6e-4, lrs)
    for a, b in zip(mine, ref):
        assert a == pytest.approx(b, rel=1e-12, abs=0)


def test_warmup_cosine_epoch_values():
    f = lambda it: lr_factor(it, 7, 12, "WarmupCosineEpochLR", [], 0.1, 20, 0.01, "linear", 0.02)  # noqa: E731
    t_max = 12 - 3  # ceil(20 / 7) = 3 warmup epochs
    cos = lambda k: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * k / t_max))  # noqa: E731
    assert f(0) == pytest.approx(0.01) and f(10) == pytest.approx(0.01 * 0.5 + 0.5)
    assert f(19) == pytest.approx(0.01 * (1 - 19 / 20) + 19 / 20)
    assert f(20) == 1.0 and f(20) == f(1) * 0 + 1.0  # the rest of the warmup's last epoch runs at BASE_LR
    assert f(21) == pytest.approx(cos(1))  # epoch 3 is the first cosine step
    assert f(7 * 7) == pytest.approx(cos(5)) and f(7 * 12 - 1) == pytest.approx(0.02)  # last epoch: ETA_MIN_LR
    g = lambda it: lr_factor(it, 5, 10, "WarmupCosineEpochLR", [], 0.1, 10, 0.1, "linear", 0.0)  # noqa: E731
    assert g(9) < 1.0 and g(10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 8)))  # W = 2 epochs: no BASE_LR


def _transreid_timm(lrs, max_epoch, warmup_epochs, ipe):
    """timm's CosineLRScheduler built as TransReID's create_scheduler, stepped with the 1-based epoch."""
    from timm.scheduler import CosineLRScheduler

    params = [nn.Parameter(torch.zeros(1)) for _ in lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])
    base = lrs[0]
    sched = CosineLRScheduler(opt, t_initial=max_epoch, lr_min=0.002 * base, cycle_mul=1.0, cycle_decay=0.1,
                              warmup_lr_init=0.01 * base, warmup_t=warmup_epochs, cycle_limit=1, t_in_epochs=True)
    out = []
    for epoch in range(1, max_epoch + 1):
        sched.step(epoch)
        out.extend([[g["lr"] for g in opt.param_groups]] * ipe)
    return out


def test_timm_cosine_matches_timm_as_transreid_uses_it():
    base, ipe, epochs = 0.008, 3, 120
    lrs = [base, 2 * base]  # BIAS_LR_FACTOR 2: the bias group too warms up from 0.01 x BASE_LR, ends at lr_min
    args = (ipe, epochs, "TimmCosineLR", [], 0.1, 0, 0.01, "linear", base, 0.002 * base)
    mine = _run(args, lrs, ipe * epochs, warmup_epochs=5)
    ref = _transreid_timm(lrs, epochs, 5, ipe)
    for a, b in zip(mine, ref):
        assert a == pytest.approx(b, rel=1e-12, abs=0)
    assert mine[0][0] == pytest.approx(0.01 * base + (base - 0.01 * base) / 5)  # epoch 1 is timm's t = 1
    assert mine[4 * ipe][0] == pytest.approx(1.6e-5 + 0.5 * (base - 1.6e-5) * (1 + math.cos(math.pi * 5 / 120)))
    assert mine[-1] == pytest.approx([1.6e-5, 1.6e-5])  # epoch 120 = t_initial: past the single cycle


@pytest.mark.parametrize("kw", [dict(), dict(warmup_prefix=True), dict(cycle_limit=3, cycle_decay=0.5),
                                dict(cycle_mul=2.0, cycle_limit=3), dict(k_decay=1.5)])
def test_timm_cosine_factor_against_timm(kw):
    from timm.scheduler import CosineLRScheduler

    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = CosineLRScheduler(opt, t_initial=10, lr_min=0.001, warmup_t=3, warmup_lr_init=0.005, **kw)
    for t in range(40):
        sched.step(t)
        assert 0.1 * timm_cosine_factor(t, 10, 3, 0.05, 0.01, **kw) == pytest.approx(opt.param_groups[0]["lr"],
                                                                                   rel=1e-12)


def test_schedule_settings_are_checked():
    with pytest.raises(ValueError, match="WARMUP_ITERS 0"):
        lr_factor(0, 10, 5, "TimmCosineLR", [], 0.1, 100, 0.01, "linear", 0.0, warmup_epochs=5)
    with pytest.raises(ValueError, match="WARMUP_EPOCHS"):
        lr_factor(0, 10, 5, "MultiStepLR", [2], 0.1, 0, 0.01, "linear", 0.0, warmup_epochs=5)
    with pytest.raises(ValueError, match="no epoch"):
        lr_factor(0, 10, 5, "WarmupCosineEpochLR", [], 0.1, 50, 0.01, "linear", 0.0)
    with pytest.raises(ValueError, match="SOLVER.SCHED"):
        lr_factor(0, 10, 5, "Poly", [], 0.1, 0, 0.01, "linear", 0.0)
    assert lr_factor(5, 10, 5, "MultiStepLR", [9], 0.1, 10, 0.01, "exp") == pytest.approx(0.01 ** 0.5)


@pytest.mark.parametrize("sched,warmup_iters,warmup_epochs", [("WarmupCosineEpochLR", 5, 0), ("TimmCosineLR", 0, 2)])
def test_new_schedules_resume_exactly(sched, warmup_iters, warmup_epochs):
    def make():
        params = [nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))]
        opt = torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.2}], lr=0.1)
        return opt, build_lr_scheduler(opt, 4, 6, sched, [], 0.1, warmup_iters, 0.01, "linear", 0.1, 1e-3,
                                       warmup_epochs=warmup_epochs)

    opt, s = make()
    lrs = []
    for _ in range(24):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        s.step()
    opt2, s2 = make()
    for _ in range(9):
        opt2.step()
        s2.step()
    opt3, s3 = make()
    opt3.load_state_dict(opt2.state_dict())
    s3.load_state_dict(s2.state_dict())
    rest = []
    for _ in range(15):
        rest.append([g["lr"] for g in opt3.param_groups])
        opt3.step()
        s3.step()
    assert rest == lrs[9:]


def test_scheduler_from_config_reads_warmup_epochs():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.SCHED", "TimmCosineLR", "SOLVER.WARMUP_EPOCHS", "5", "SOLVER.WARMUP_ITERS", "0",
                         "SOLVER.WARMUP_FACTOR", "0.01", "SOLVER.BASE_LR", "0.008", "SOLVER.ETA_MIN_LR", "1.6e-5",
                         "SOLVER.MAX_EPOCH", "120"])
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.008)
    scheduler_from_config(cfg, opt, 10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.008 * (0.01 + 0.99 / 5))


class _Tiny(nn.Module):
    """Backbone conv + BN + LN + Linear, a top-level ``heads`` with a BNNeck (frozen bias) and classifier."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm(4),
                                      nn.Linear(4, 4))
        self.prompt = nn.Parameter(torch.zeros(2, 4))
        self.heads = nn.Module()
        self.heads.bottleneck = nn.BatchNorm1d(4)
        self.heads.bottleneck.bias.requires_grad_(False)
        self.heads.classifier = nn.Linear(4, 3, bias=False)
        self.local_heads = nn.Linear(4, 3)


def _by_name(groups):
    return {g["name"]: (g["lr"], g["weight_decay"], g["param_names"]) for g in groups}


def test_param_groups_secap_recipe():
    """fast-reid defaults as SeCap runs them: wd 1e-4, norm and bias wd 5e-4, all factors 1 -> two groups."""
    groups = param_groups(_Tiny(), 0.008, 1e-4, 1.0, 5e-4, 1.0, weight_decay_norm=5e-4)
    got = _by_name(groups)
    assert set(got) == {"base+heads", "bias+norm+heads_norm"}
    assert got["base+heads"][:2] == (0.008, 1e-4)
    assert got["base+heads"][2] == ["prompt", "backbone.0.weight", "backbone.4.weight", "heads.classifier.weight",
                                    "local_heads.weight"]
    assert got["bias+norm+heads_norm"][:2] == (0.008, 5e-4)
    assert got["bias+norm+heads_norm"][2] == [
        "backbone.0.bias", "backbone.1.weight", "backbone.1.bias", "backbone.3.weight", "backbone.3.bias",
        "backbone.4.bias", "heads.bottleneck.weight", "local_heads.bias"]  # frozen BNNeck bias left out
    assert all(len(g["params"]) == len(g["param_names"]) for g in groups)


def test_param_groups_transreid_recipe_and_heads_factor():
    """TransReID: bias lr x2 and bias wd 1e-4, norm weights as any weight; plus a heads factor."""
    model = _Tiny()
    got = _by_name(param_groups(model, 0.008, 1e-4, 2.0, 1e-4, 1.0))
    assert set(got) == {"base+norm+heads_norm+heads", "bias"}
    assert got["bias"][:2] == (0.016, 1e-4) and "backbone.1.bias" in got["bias"][2]
    assert got["base+norm+heads_norm+heads"][:2] == (0.008, 1e-4)
    assert param_groups(model, 0.008, 1e-4, 2.0, 1e-4, bias_rule="substring") == param_groups(
        model, 0.008, 1e-4, 2.0, 1e-4)
    got = _by_name(param_groups(model, 0.1, 1e-4, 2.0, 0.0, 10.0, weight_decay_norm=0.0))
    assert list(got) == ["base", "bias", "norm", "heads_norm", "heads"]
    heads = {n: (lr, wd) for lr, wd, names in got.values() for n in names}
    assert heads["heads.classifier.weight"] == (1.0, 1e-4) and heads["heads.bottleneck.weight"] == (1.0, 0.0)
    assert heads["local_heads.bias"] == (0.2, 0.0) and heads["backbone.3.weight"] == (0.1, 0.0)


def test_optimizer_from_config_merges_groups_and_uses_foreach():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.OPT", "SGD", "SOLVER.BASE_LR", "0.008", "SOLVER.WEIGHT_DECAY", "1e-4",
                         "SOLVER.WEIGHT_DECAY_BIAS", "5e-4", "SOLVER.WEIGHT_DECAY_NORM", "5e-4"])
    opt = optimizer_from_config(cfg, _Tiny())
    assert [g["name"] for g in opt.param_groups] == ["base+heads", "bias+norm+heads_norm"]
    assert opt.defaults["foreach"] is True and opt.defaults["momentum"] == 0.9
    cfg.merge_from_list(["SOLVER.WEIGHT_DECAY_NORM", "-1.0"])  # default: norm weights decay as WEIGHT_DECAY
    opt = optimizer_from_config(cfg, _Tiny())
    assert "backbone.1.weight" in opt.param_groups[0]["param_names"]


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_merged_groups_step_like_one_group_per_parameter(name):
    torch.manual_seed(0)
    a = _Tiny()
    b = _Tiny()
    b.load_state_dict(a.state_dict())
    merged = build_optimizer(name, param_groups(a, 0.01, 1e-3, 2.0, 0.0), 0.01)
    single = [{"params": [p], "lr": g["lr"], "weight_decay": g["weight_decay"]}
              for g in param_groups(b, 0.01, 1e-3, 2.0, 0.0) for p in g["params"]]
    single = build_optimizer(name, single, 0.01, impl="default")
    x = torch.randn(4, 3, 3, 3)
    for _ in range(3):
        for model, opt in ((a, merged), (b, single)):
            opt.zero_grad()
            f = model.backbone(x)
            (model.heads.classifier(model.heads.bottleneck(f)).square().mean() + model.local_heads(f).mean()
             + model.prompt.sum()).backward()
            opt.step()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=1e-6, atol=1e-7), n


def _with_grads(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.zeros(s)) for s in shapes]
    for p, scale in zip(params, (0.01, 3.0, 10.0, 0.5, 100.0)):
        p.grad = torch.randn(p.shape, generator=g) * scale
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_norm_per_param_clipping_equals_a_loop(norm_type):
    shapes = [(3, 4), (7,), (2, 2, 2), (5,), (6, 3)]
    fast, slow = _with_grads(shapes), _with_grads(shapes)
    build_grad_clipper("norm_per_param", 1.0, norm_type)(fast)
    for p in slow:  # fast-reid's per_param_clipper: clip_grad_norm_ on each parameter alone
        torch.nn.utils.clip_grad_norm_(p, 1.0, norm_type)
    for p, q in zip(fast, slow):
        assert torch.allclose(p.grad, q.grad, rtol=1e-6, atol=0)
    assert any(p.grad.norm(norm_type) < 0.9 for p in fast)  # a small gradient was left alone


@pytest.mark.parametrize("norm_type", [2.0, float("inf")])
def test_norm_per_group_clipping_equals_clipping_each_group(norm_type):
    shapes = [(3, 4), (7,), (2, 2, 2), (5,), (6, 3)]
    fast, slow = _with_grads(shapes), _with_grads(shapes)
    split = lambda ps: [[ps[0], ps[2]], [ps[1], ps[3], ps[4]]]  # noqa: E731
    groups = [{"params": g} for g in split(fast)]
    clip = build_grad_clipper("norm_per_group", 5.0, norm_type, param_groups=groups)
    clip(fast)
    clip(fast)  # idempotent, and the cached index tensors are reused
    for group in split(slow):  # fast-reid + ContiguousParams: one flat buffer per group
        torch.nn.utils.clip_grad_norm_(group, 5.0, norm_type)
    for p, q in zip(fast, slow):
        assert torch.allclose(p.grad, q.grad, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="param_groups"):
        build_grad_clipper("norm_per_group", 5.0, 2.0)


def test_norm_and_value_clipping_and_missing_grads():
    shapes = [(3, 4), (7,), (2, 2, 2)]
    mine, ref = _with_grads(shapes), _with_grads(shapes)
    mine[1].grad = ref[1].grad = None
    build_grad_clipper("norm", 2.0, 2.0)(mine)
    torch.nn.utils.clip_grad_norm_(ref, 2.0, 2.0)
    assert all(torch.allclose(p.grad, q.grad) for p, q in zip(mine[::2], ref[::2])) and mine[1].grad is None
    build_grad_clipper("norm_per_param", 2.0, 2.0)(mine)  # gradient None: skipped
    mine = _with_grads(shapes)
    build_grad_clipper("value", 0.5, 2.0)(mine)
    assert max(float(p.grad.abs().max()) for p in mine) == 0.5
    with pytest.raises(ValueError, match="CLIP_TYPE"):
        build_grad_clipper("agc", 1.0, 2.0)


def test_grad_clipper_from_config():
    cfg = get_cfg()
    assert grad_clipper_from_config(cfg) is None
    cfg.merge_from_list(["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm_per_group"])
    params = _with_grads([(3, 4), (7,)])
    opt = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=0.1)
    clip = grad_clipper_from_config(cfg, opt)
    clip(params)
    assert all(float(p.grad.norm()) <= 5.0 + 1e-5 for p in params)


def test_bias_rule_and_model_lr_factors_from_config():
    """SOLVER.BIAS_RULE substring treats attention ``in_proj_bias`` as a bias; a model's ``param_lr_factors()``
    multiplies the LR of the parameters it names (TF-CLIP's LARGE_FC_LR)."""
    from torch import nn

    from agreid.config import get_cfg
    from agreid.solver import optimizer_from_config

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2)
            self.classifier = nn.Linear(8, 3, bias=False)

        def param_lr_factors(self):
            return {"classifier.weight": 10.0}

    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.1", "SOLVER.BIAS_LR_FACTOR", "2.0"])
    net = Net()

    def lr_of(opt, name):
        return next(g["lr"] for g in opt.param_groups if name in g["param_names"])

    leaf = optimizer_from_config(cfg, net)
    assert lr_of(leaf, "attn.in_proj_bias") == pytest.approx(0.1)
    assert lr_of(leaf, "attn.out_proj.bias") == pytest.approx(0.2)
    assert lr_of(leaf, "classifier.weight") == pytest.approx(1.0)
    cfg.merge_from_list(["SOLVER.BIAS_RULE", "substring"])
    sub = optimizer_from_config(cfg, net)
    assert lr_of(sub, "attn.in_proj_bias") == pytest.approx(0.2)
    assert lr_of(sub, "attn.in_proj_weight") == pytest.approx(0.1)
