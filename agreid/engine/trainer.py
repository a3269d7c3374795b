"""DefaultTrainer: builds data, model, optimizer, schedule, checkpointing and hooks from a config."""
from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from agreid.config import CfgNode, ConfigError
from agreid.engine import hooks
from agreid.engine.train_loop import SimpleTrainer
from agreid.modeling import resolve_device
from agreid.utils import comm
from agreid.utils.checkpoint import Checkpointer, get_rng_state, set_rng_state
from agreid.utils.writers import ConsoleWriter, JSONWriter, TensorboardWriter

logger = logging.getLogger("agreid.engine")

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def side_info_counts(records: Sequence[Any]) -> Dict[str, int]:
    """``cameras`` and ``views``: one more than the largest camera id / view code among ``records``."""
    from agreid.data.records import view_index

    cams = [int(r.camid) for r in records]
    views = [view_index(r.view) for r in records]
    return {"cameras": max(cams) + 1 if cams else 0, "views": max(views) + 1 if views else 0}


class DefaultTrainer(SimpleTrainer):
    """The standard recipe; override the ``build_*`` classmethods to change one piece.

    Construction order: train loader (fixes the number of classes), test protocols (so a wrong
    DATASETS.TESTS entry stops the run before training, not at its first evaluation), model,
    optimizer, DDP wrap, schedule, checkpointer, hooks. ``resume_or_load`` then decides where
    training starts. Nothing is written to OUTPUT_DIR until training starts.
    """

    def __init__(self, cfg: CfgNode) -> None:
        from agreid.data.build import build_test_protocols

        device = resolve_device(cfg.MODEL.DEVICE)
        data_loader, batch_sampler, num_classes = self.build_train_loader(cfg)
        protocols = build_test_protocols(cfg) if cfg.DATASETS.TESTS else []
        records = list(getattr(getattr(data_loader, "dataset", None), "records", []))
        for _, proto in protocols:
            records += list(proto.query) + list(proto.gallery)
        cfg = self.auto_scale_hyperparams(cfg, num_classes, side_info_counts(records))
        model = self.build_model(cfg, device)
        optimizer = self.build_optimizer(cfg, model)
        model = self.wrap_ddp(model, device)
        amp = AMP_DTYPES[cfg.SOLVER.AMP.DTYPE] if cfg.SOLVER.AMP.ENABLED else None
        if amp is not None and device.type != "cuda":
            logger.info("SOLVER.AMP.ENABLED is ignored on the CPU")
        super().__init__(model, data_loader, optimizer, amp_dtype=amp,
                         clip_grad=self.build_grad_clipper(cfg, optimizer), device=device,
                         metrics_period=cfg.SOLVER.LOG_PERIOD)
        self.cfg = cfg
        self.batch_sampler = batch_sampler
        self._test_protocols = protocols
        self.iters_per_epoch = len(batch_sampler)
        self.max_epoch = cfg.SOLVER.MAX_EPOCH
        self.scheduler = self.build_lr_scheduler(cfg, optimizer, self.iters_per_epoch)
        self.checkpointer = Checkpointer(model, cfg.OUTPUT_DIR, save_to_disk=comm.is_main_process(),
                                         optimizer=optimizer, scheduler=self.scheduler,
                                         grad_scaler=self.grad_scaler)
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        from agreid.data.build import build_train_loader

        return build_train_loader(cfg)

    @classmethod
    def auto_scale_hyperparams(cls, cfg: CfgNode, num_classes: int,
                               side_info: Optional[Mapping[str, int]] = None) -> CfgNode:
        """Set MODEL.HEADS.NUM_CLASSES from the training data (and MODEL.NUM_CAMERAS / NUM_VIEWS where 0).

        ``side_info`` holds ``cameras`` and ``views``: one more than the largest camera id and view
        code among the training and test records, the sizes SIE embedding tables need.
        """
        cfg = cfg.clone()
        cfg.defrost()
        if cfg.MODEL.HEADS.NUM_CLASSES not in (0, num_classes):
            logger.warning(f"MODEL.HEADS.NUM_CLASSES={cfg.MODEL.HEADS.NUM_CLASSES} replaced by the "
                           f"{num_classes} training identities")
        cfg.MODEL.HEADS.NUM_CLASSES = num_classes
        side_info = side_info or {}
        for key, name in (("NUM_CAMERAS", "cameras"), ("NUM_VIEWS", "views")):
            found = int(side_info.get(name, 0))
            if cfg.MODEL[key] == 0:
                cfg.MODEL[key] = found
            elif found > cfg.MODEL[key]:
                raise ConfigError(f"MODEL.{key}={cfg.MODEL[key]} but the data has {name} ids up to "
                                  f"{found - 1}; set it to at least {found} (or 0 to take it from the data)")
        cfg.freeze()
        world = comm.get_world_size()
        per_rank = cfg.SOLVER.IMS_PER_BATCH // world
        logger.info(f"{num_classes} training identities; batch {cfg.SOLVER.IMS_PER_BATCH} = {world} "
                    f"process(es) x {per_rank} (P={per_rank // max(cfg.DATALOADER.NUM_INSTANCE, 1)} "
                    f"x K={cfg.DATALOADER.NUM_INSTANCE})")
        return cfg

    @classmethod
    def eval_only_config(cls, cfg: CfgNode, protocols: Sequence[Any]) -> CfgNode:
        """For ``--eval-only``: MODEL.NUM_CAMERAS / NUM_VIEWS left at 0 are counted as in training, over the
        training lists (when readable) and the test protocols, so an SIE model gets the tables it was trained
        with."""
        if cfg.MODEL.NUM_CAMERAS and cfg.MODEL.NUM_VIEWS:
            return cfg
        from agreid.data.build import build_train_set, resolve_root
        from agreid.data.records import DatasetError

        records: List[Any] = []
        try:
            records, _, _ = build_train_set(list(cfg.DATASETS.NAMES), resolve_root(cfg.DATASETS.ROOT_DIR),
                                            list(cfg.DATASETS.OPTIONS))
        except DatasetError as e:
            logger.info(f"Camera and view counts from the test sets only (training lists unreadable: {e})")
        for _, proto in protocols:
            records += list(proto.query) + list(proto.gallery)
        counts = side_info_counts(records)
        cfg = cfg.clone()
        cfg.defrost()
        cfg.MODEL.NUM_CAMERAS = cfg.MODEL.NUM_CAMERAS or counts["cameras"]
        cfg.MODEL.NUM_VIEWS = cfg.MODEL.NUM_VIEWS or counts["views"]
        cfg.freeze()
        return cfg

    @classmethod
    def build_model(cls, cfg: CfgNode, device: Optional[torch.device] = None) -> nn.Module:
        from agreid.modeling import build_model

        model = build_model(cfg)
        if device is not None:
            model.to(device)
        n = sum(p.numel() for p in model.parameters())
        logger.info(f"Model {cfg.MODEL.META_ARCHITECTURE} with {n / 1e6:.2f} M parameters")
        return model

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        from agreid.solver import optimizer_from_config

        return optimizer_from_config(cfg, model)

    @classmethod
    def build_grad_clipper(cls, cfg: CfgNode, optimizer: torch.optim.Optimizer):
        """SOLVER.CLIP_GRADIENTS as a function of the parameters, or None when clipping is off."""
        from agreid.solver import grad_clipper_from_config

        return grad_clipper_from_config(cfg, optimizer)

    @classmethod
    def build_lr_scheduler(cls, cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int):
        from agreid.solver import scheduler_from_config

        return scheduler_from_config(cfg, optimizer, iters_per_epoch)

    @staticmethod
    def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
        if comm.get_world_size() == 1:
            return model
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
            return nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)

    def build_writers(self) -> List:
        out = self.cfg.OUTPUT_DIR
        return [ConsoleWriter(self.max_iter), JSONWriter(os.path.join(out, "metrics.json")),
                TensorboardWriter(out)]

    def build_hooks(self) -> List[hooks.HookBase]:
        cfg = self.cfg
        eval_hook = hooks.EvalHook(cfg.TEST.EVAL_PERIOD, self.evaluate)
        ret: List[Any] = [hooks.IterationTimer(), hooks.LRScheduler(self.optimizer, self.scheduler),
                          hooks.BufferSync(), eval_hook]
        if comm.is_main_process():
            ret += [hooks.BestCheckpointer(eval_hook, self.checkpointer, cfg.TEST.BEST_METRIC),
                    hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD,
                                               self.training_state),
                    hooks.ProgressBar(),
                    hooks.PeriodicWriter(self.build_writers(), cfg.SOLVER.LOG_PERIOD)]
        else:
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD,
                                                  self.training_state))
        return ret

    def training_state(self) -> Dict[str, Any]:
        """Everything beyond model/optimizer/schedule/scaler that resume needs; gathered on every rank."""
        return {"epoch": self.epoch, "iteration": self.iter, "num_classes": self.cfg.MODEL.HEADS.NUM_CLASSES,
                "rng_states": comm.all_gather_object(get_rng_state()), "hooks": self.hooks_state_dict(),
                "config": self.cfg.dump()}

    def resume_or_load(self, resume: bool = True) -> None:
        """``resume``: continue from OUTPUT_DIR's last checkpoint if any; else start from MODEL.WEIGHTS."""
        extra, resumed = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume,
                                                          allow_partial=self.cfg.MODEL.ALLOW_PARTIAL_WEIGHTS)
        self.start_epoch = 0
        if resumed:
            self.start_epoch = int(extra["epoch"]) + 1
            self.load_hooks_state_dict(extra.get("hooks", {}))
            states = extra.get("rng_states") or []
            rank = comm.get_rank()
            if rank < len(states):
                set_rng_state(states[rank])
            else:
                logger.warning("Checkpoint has no RNG state for this rank; randomness will differ")

    def train(self, start_epoch: Optional[int] = None, max_epoch: Optional[int] = None,
              iters_per_epoch: Optional[int] = None) -> Mapping[str, Any]:
        super().train(self.start_epoch if start_epoch is None else start_epoch,
                      self.max_epoch if max_epoch is None else max_epoch,
                      self.iters_per_epoch if iters_per_epoch is None else iters_per_epoch)
        return self._eval_hook().latest or {}

    def _eval_hook(self) -> hooks.EvalHook:
        return next(h for h in self._hooks if isinstance(h, hooks.EvalHook))

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Periodic evaluation on the test protocols read at start-up (once per run, not per evaluation)."""
        return self.test(self.cfg, self.model, self._test_protocols)

    @classmethod
    def test(cls, cfg: CfgNode, model: nn.Module, protocols=None) -> Dict[str, Dict[str, float]]:
        """Evaluate ``model`` on DATASETS.TESTS (or the given ``build_test_protocols`` list)."""
        from agreid.engine.testing import run_tests

        return run_tests(cfg, model, protocols)
