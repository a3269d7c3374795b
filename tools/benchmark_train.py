#!/usr/bin/env python
"""Training-step overhead: agreid's engine against a bare PyTorch loop, same model, batch, optimizer, precision.

Both sides train a copy of the same freshly built model (``build_model`` from the config) on one
synthetic P×K batch that stays on the device, so only the step itself is compared:

* **agreid**: :class:`DefaultTrainer` with every per-step hook it registers in a real run (timer, LR
  schedule, buffer sync, metric writers to console / JSON / TensorBoard, progress bar), the
  config's parameter groups, gradient clipping and AMP settings.
* **bare**: ``loss = sum(model(batch).values()); opt.zero_grad(); loss.backward(); opt.step()`` with
  ``torch.optim.<SOLVER.OPT>`` over ``model.parameters()`` at BASE_LR (and a GradScaler for fp16).

Rounds alternate bare / agreid so machine noise hits both alike; the medians over rounds and their
ratio are printed. On a GPU pass ``--device cuda --amp bf16`` (or fp16). The CPU defaults shrink the
ViT so a round takes seconds on two cores.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from typing import Any, Dict, List

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from agreid.config import get_cfg  # noqa: E402
from agreid.engine import DefaultTrainer, HookBase  # noqa: E402

CPU_OVERRIDES = ["MODEL.BACKBONE.VIT.DEPTH", "4", "MODEL.BACKBONE.VIT.EMBED_DIM", "192",
                 "MODEL.BACKBONE.VIT.NUM_HEADS", "3", "INPUT.SIZE_TRAIN", "[128, 64]", "INPUT.SIZE_TEST", "[128, 64]"]
AMP = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def synthetic_batch(batch: int, k: int, size: List[int], device: torch.device) -> Dict[str, Any]:
    """One P×K batch of random images with identity, camera and view labels, already on ``device``."""
    g = torch.Generator().manual_seed(0)
    pids = torch.arange(batch // k).repeat_interleave(k)
    return {"images": torch.randn(batch, 3, *size, generator=g).to(device), "targets": pids.to(device),
            "camids": (pids % 4).to(device), "views": (pids % 2).to(device),
            "modalities": torch.zeros_like(pids).to(device)}


class RepeatLoader:
    """Yields the same batch forever: no data time on either side."""

    def __init__(self, batch: Dict[str, Any]) -> None:
        self.batch = batch
        self.batch_sampler = None

    def __iter__(self):
        while True:
            yield self.batch


class StepClock(HookBase):
    """Times steps ``warmup`` .. end of the epoch, synchronising the device at both ends."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device, self.seconds, self._start = warmup, device, 0.0, 0.0

    def before_step(self) -> None:
        if self.trainer.iter == self.warmup:
            _sync(self.device)
            self._start = time.perf_counter()

    def after_step(self) -> None:
        if self.trainer.iter == self.trainer.iters_per_epoch - 1:
            _sync(self.device)
            self.seconds = time.perf_counter() - self._start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_cfg(args: argparse.Namespace, out_dir: str):
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    opts = (CPU_OVERRIDES if args.device == "cpu" and not args.full_size else []) + [
        "MODEL.DEVICE", args.device, "MODEL.HEADS.NUM_CLASSES", str(args.batch // args.k),
        "MODEL.PRETRAIN_PATH", "", "MODEL.WEIGHTS", "", "SOLVER.IMS_PER_BATCH", str(args.batch),
        "DATALOADER.NUM_INSTANCE", str(args.k), "DATASETS.TESTS", "[]", "TEST.EVAL_PERIOD", "0",
        "SOLVER.CHECKPOINT_PERIOD", "0", "SOLVER.MAX_EPOCH", "1", "OUTPUT_DIR", out_dir,
        "SOLVER.WARMUP_ITERS", "0",  # both sides step at BASE_LR
        "SOLVER.AMP.ENABLED", str(args.amp != "none"), "SOLVER.AMP.DTYPE", args.amp if args.amp != "none" else "fp16",
        *args.opts]
    cfg.merge_from_list(opts)
    cfg.freeze()
    return cfg


def agreid_round(cfg, model: torch.nn.Module, batch: Dict[str, Any], steps: int, warmup: int) -> float:
    """Seconds per step of DefaultTrainer on the synthetic batch."""

    class Trainer(DefaultTrainer):
        @classmethod
        def build_train_loader(cls, cfg):
            return RepeatLoader(batch), range(steps + warmup), batch["targets"].max().item() + 1

        @classmethod
        def build_model(cls, cfg, device=None):
            return copy.deepcopy(model)

    trainer = Trainer(cfg)
    clock = StepClock(warmup, trainer.device)
    trainer.register_hooks([clock])
    trainer.train(0, 1, steps + warmup)
    return clock.seconds / steps


def bare_round(cfg, model: torch.nn.Module, batch: Dict[str, Any], steps: int, warmup: int) -> float:
    """Seconds per step of the plain loop on the synthetic batch."""
    device = torch.device(cfg.MODEL.DEVICE)
    net = copy.deepcopy(model).train()
    s = cfg.SOLVER
    kwargs = {"momentum": s.MOMENTUM} if s.OPT == "SGD" else {}
    opt = getattr(torch.optim, s.OPT)(net.parameters(), lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY, **kwargs)
    amp = AMP[cfg.SOLVER.AMP.DTYPE] if cfg.SOLVER.AMP.ENABLED and device.type == "cuda" else None
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    start = 0.0
    for i in range(steps + warmup):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=amp) if amp else nullcontext():
            loss = sum(net(batch).values())
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=os.path.join(HERE, "..", "configs", "Base-TransReID.yml"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", default="none", choices=sorted(AMP))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--k", type=int, default=4, help="images per identity (K of P×K)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--full-size", action="store_true", help="on the CPU too, keep the config's model size")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    logging.getLogger("agreid").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="agreid-bench-") as out:
        cfg = make_cfg(args, out)
        torch.manual_seed(0)
        from agreid.modeling import build_model

        model = build_model(cfg)
        batch = synthetic_batch(args.batch, args.k, list(cfg.INPUT.SIZE_TRAIN), torch.device(args.device))
        n = sum(p.numel() for p in model.parameters())
        print(f"model {cfg.MODEL.META_ARCHITECTURE}/{cfg.MODEL.BACKBONE.NAME} {n / 1e6:.1f} M params, batch "
              f"{args.batch} at {list(cfg.INPUT.SIZE_TRAIN)}, {cfg.SOLVER.OPT}, device {args.device}, amp {args.amp}, "
              f"{args.rounds} rounds x {args.steps} steps")
        bare, ours = [], []
        for r in range(args.rounds):
            bare.append(bare_round(cfg, model, batch, args.steps, args.warmup))
            ours.append(agreid_round(cfg, model, batch, args.steps, args.warmup))
            print(f"  round {r}: bare {bare[-1] * 1e3:8.1f} ms/step   agreid {ours[-1] * 1e3:8.1f} ms/step")
    b, a = statistics.median(bare), statistics.median(ours)
    print(f"median: bare {b * 1e3:.1f} ms/step, agreid {a * 1e3:.1f} ms/step, ratio agreid/bare {a / b:.3f}")


if __name__ == "__main__":
    main()
