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
from agreid.utils.errors import CheckpointError
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
    DATASETS.TESTS entry stops the run before training, not at its first evaluation), model, then the
    model's stages (:mod:`agreid.modeling.stages`; one stage "train" unless the model declares more).
    Each stage gets its own solver (:func:`agreid.engine.stages.stage_config`), optimizer, schedule, DDP
    wrap, checkpointer and hooks, built when the stage starts; a single-stage model gets them here, at once.
    ``resume_or_load`` then decides where training starts: the checkpoint names its stage and epoch.
    Nothing is written to OUTPUT_DIR until training starts.

    Checkpoints of the last stage are ``model_XXXX`` / ``model_final`` / ``model_best``; those of earlier
    stages ``model_<stage>_XXXX`` / ``model_<stage>_final``, with metrics in ``metrics_<stage>.json`` and
    TensorBoard events under ``stage_<stage>/``. Only the last stage evaluates.
    """

    def __init__(self, cfg: CfgNode) -> None:
        from agreid.data.build import build_test_protocols
        from agreid.modeling.stages import model_stages

        device = resolve_device(cfg.MODEL.DEVICE)
        data_loader, batch_sampler, num_classes = self.build_train_loader(cfg)
        protocols = build_test_protocols(cfg) if cfg.DATASETS.TESTS else []
        train_records = list(getattr(getattr(data_loader, "dataset", None), "records", []))
        records = list(train_records)
        for _, proto in protocols:
            records += list(proto.query) + list(proto.gallery)
        side_info = {**side_info_counts(records),
                     "attribute_classes": getattr(getattr(data_loader, "dataset", None), "attribute_classes", ())}
        cfg = self.auto_scale_hyperparams(cfg, num_classes, side_info)
        model = self.build_model(cfg, device)
        if not cfg.MODEL.PRETRAIN_PATH and not cfg.MODEL.WEIGHTS:
            logger.info("MODEL.PRETRAIN_PATH and MODEL.WEIGHTS are empty: training starts from random weights "
                        "(the methods' recipes start from a pretrained file, see INSTALL.md)")
        amp = AMP_DTYPES[cfg.SOLVER.AMP.DTYPE] if cfg.SOLVER.AMP.ENABLED else None
        if amp is not None and device.type != "cuda":
            logger.info("SOLVER.AMP.ENABLED is ignored on the CPU")
        super().__init__(model, data_loader, None, amp_dtype=amp, device=device,
                         metrics_period=cfg.SOLVER.LOG_PERIOD)
        self.cfg = cfg
        self.base_model = model
        self.image_loader, self.batch_sampler = data_loader, batch_sampler
        self.train_records = train_records
        self._test_protocols = protocols
        self.stages = model_stages(model)
        self.stage_index = -1
        self.start_stage = 0
        self._pending: Optional[Dict[str, Any]] = None
        self.checkpointer = Checkpointer(model, cfg.OUTPUT_DIR, save_to_disk=comm.is_main_process())
        self._user_hooks: List[hooks.HookBase] = []
        if not hasattr(model, "begin_stage"):
            self.setup_stage(0)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        from agreid.data.build import build_train_loader

        return build_train_loader(cfg)

    @classmethod
    def auto_scale_hyperparams(cls, cfg: CfgNode, num_classes: int,
                               side_info: Optional[Mapping[str, Any]] = None) -> CfgNode:
        """Set MODEL.HEADS.NUM_CLASSES from the training data (and MODEL.NUM_CAMERAS / NUM_VIEWS where 0,
        MODEL.ATTRIBUTE_NAMES / ATTRIBUTE_CLASSES where empty).

        ``side_info`` holds ``cameras`` and ``views``: one more than the largest camera id and view
        code among the training and test records, the sizes SIE embedding tables need; and
        ``attribute_classes``: the (name, class count) pairs the training batches label (SVPR captions).
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
        attributes = side_info.get("attribute_classes") or ()
        if attributes and not cfg.MODEL.ATTRIBUTE_CLASSES:
            cfg.MODEL.ATTRIBUTE_NAMES = [str(n) for n, _ in attributes]
            cfg.MODEL.ATTRIBUTE_CLASSES = [int(c) for _, c in attributes]
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
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module, exclude=None) -> torch.optim.Optimizer:
        """SOLVER's optimizer over the trainable parameters, less ``exclude`` (ids stepped by OwnOptimizers)."""
        from agreid.solver import optimizer_from_config

        return optimizer_from_config(cfg, model, exclude=exclude)

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
        # broadcast_buffers False: buffers a model updates itself (online label smoothing's statistics) must not be
        # overwritten by rank 0's every step; BufferSync averages them at each epoch end. A model whose reference
        # keeps parameters that never get a gradient says so with ``ddp_find_unused_parameters``.
        unused = bool(getattr(model, "ddp_find_unused_parameters", False))
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return nn.parallel.DistributedDataParallel(model, device_ids=[device.index], broadcast_buffers=False,
                                                       find_unused_parameters=unused)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
            return nn.parallel.DistributedDataParallel(model, broadcast_buffers=False, find_unused_parameters=unused)

    def register_hooks(self, new_hooks) -> None:
        """Hooks registered from outside (not by ``build_hooks``) stay registered in every later stage."""
        new_hooks = [h for h in new_hooks if h is not None]
        super().register_hooks(new_hooks)
        self._user_hooks += new_hooks

    @property
    def stage(self):
        """The :class:`StageSpec` being run (or set up)."""
        return self.stages[max(self.stage_index, 0)]

    @property
    def is_last_stage(self) -> bool:
        return self.stage_index == len(self.stages) - 1

    def _stage_prefix(self) -> str:
        return "model_" if self.is_last_stage else f"model_{self.stage.name}_"

    def setup_stage(self, index: int) -> None:
        """Enter stage ``index``: the model's ``begin_stage`` (freezing, caches, custom batches), then the
        stage's optimizer, schedule, DDP wrap, checkpointer and hooks."""
        from agreid.engine.stages import TrainingContext, stage_config, stage_epochs
        from agreid.modeling.stages import set_stage
        from agreid.solver import OwnOptimizers

        self.stage_index = index
        spec = self.stages[index]
        scfg = stage_config(self.cfg, spec)
        model = self.base_model
        set_stage(model, spec.name)
        loader, iters = self.image_loader, len(self.batch_sampler)
        if hasattr(model, "begin_stage"):
            records = [r for r in self.train_records if spec.records(r)] if spec.records else self.train_records
            if not records:
                raise ConfigError(f"Stage '{spec.name}' selects no training record")
            if spec.data == "images" and spec.records is not None:
                raise ConfigError(f"Stage '{spec.name}': a record filter needs data='custom'")
            world = comm.get_world_size()
            ctx = TrainingContext(self.cfg, self.device, records, max(scfg.SOLVER.IMS_PER_BATCH // world, 1),
                                  self.cfg.OUTPUT_DIR, seed=max(int(self.cfg.SEED), 0))
            logger.info(f"Stage {index + 1}/{len(self.stages)} '{spec.name}': preparing")
            custom = model.begin_stage(spec.name, ctx)
            if spec.data == "custom":
                if custom is None:
                    raise TypeError(f"{type(model).__name__}.begin_stage('{spec.name}') must return the stage's "
                                    f"batches (its StageSpec has data='custom')")
                loader, iters = custom, len(custom)
        epochs = stage_epochs(self.cfg, spec)
        own = OwnOptimizers(model)
        optimizer = self.build_optimizer(scfg, model, exclude=own.param_ids()) if epochs > 0 else None
        self.model = self.wrap_ddp(model, self.device) if epochs > 0 else model
        self.model.train()
        self.data_loader, self._data_iter = loader, None
        self.optimizer = optimizer
        self.own_optimizers = own if len(own) else None
        self._params = [p for g in optimizer.param_groups for p in g["params"]] if optimizer else []
        self.clip_grad = self.build_grad_clipper(scfg, optimizer) if optimizer else None
        self.iters_per_epoch = iters
        self.max_epoch = epochs
        self.metrics_period = max(int(scfg.SOLVER.LOG_PERIOD), 1)
        self.scheduler = self.build_lr_scheduler(scfg, optimizer, iters) if optimizer else None
        if self.grad_scaler is not None:
            self.grad_scaler = torch.amp.GradScaler("cuda")
        self.stage_cfg = scfg
        self.checkpointer = Checkpointer(self.model, self.cfg.OUTPUT_DIR, save_to_disk=comm.is_main_process(),
                                         optimizer=optimizer, scheduler=self.scheduler,
                                         grad_scaler=self.grad_scaler, own_optimizers=self.own_optimizers)
        self._hooks = []
        super().register_hooks(self.build_hooks() + self._user_hooks)  # the stage's own, then the caller's
        if len(self.stages) > 1:
            trainable = sum(p.numel() for p in self._params)
            logger.info(f"Stage {index + 1}/{len(self.stages)} '{spec.name}': {epochs} epochs x {iters} "
                        f"iterations, {trainable:,} trainable parameters")

    def build_writers(self) -> List:
        out = self.cfg.OUTPUT_DIR
        if self.is_last_stage:
            return [ConsoleWriter(self.max_iter), JSONWriter(os.path.join(out, "metrics.json")),
                    TensorboardWriter(out)]
        name = self.stage.name
        return [ConsoleWriter(self.max_iter), JSONWriter(os.path.join(out, f"metrics_{name}.json")),
                TensorboardWriter(os.path.join(out, f"stage_{name}"))]

    def build_hooks(self) -> List[hooks.HookBase]:
        cfg, scfg = self.cfg, self.stage_cfg
        ret: List[Any] = [hooks.IterationTimer()]
        if self.scheduler is not None:
            ret.append(hooks.LRScheduler(self.optimizer, self.scheduler))
        ret += [hooks.ModelEpochEnd(), hooks.BufferSync()]
        eval_hook = hooks.EvalHook(cfg.TEST.EVAL_PERIOD, self.evaluate) if self.is_last_stage else None
        ret.append(eval_hook)
        periodic = hooks.PeriodicCheckpointer(self.checkpointer, scfg.SOLVER.CHECKPOINT_PERIOD,
                                              self.training_state, prefix=self._stage_prefix())
        if comm.is_main_process():
            if eval_hook is not None:
                ret.append(hooks.BestCheckpointer(eval_hook, self.checkpointer, cfg.TEST.BEST_METRIC))
            ret += [periodic, hooks.ProgressBar(), hooks.PeriodicWriter(self.build_writers(), scfg.SOLVER.LOG_PERIOD)]
        else:
            ret.append(periodic)
        return ret

    def training_state(self) -> Dict[str, Any]:
        """Everything beyond model/optimizer/schedule/scaler that resume needs; gathered on every rank."""
        return {"epoch": self.epoch, "iteration": self.iter, "num_classes": self.cfg.MODEL.HEADS.NUM_CLASSES,
                "stage": self.stage.name, "rng_states": comm.all_gather_object(get_rng_state()),
                "hooks": self.hooks_state_dict(), "config": self.cfg.dump()}

    def resume_or_load(self, resume: bool = True) -> None:
        """``resume``: continue from OUTPUT_DIR's last checkpoint if any, inside the stage it names; else start
        from MODEL.WEIGHTS."""
        from agreid.engine.stages import stage_epochs

        extra, resumed = Checkpointer(self.base_model, self.cfg.OUTPUT_DIR, save_to_disk=comm.is_main_process()) \
            .resume_or_load(self.cfg.MODEL.WEIGHTS, resume, allow_partial=self.cfg.MODEL.ALLOW_PARTIAL_WEIGHTS)
        self.start_stage, self.start_epoch, self._pending = 0, 0, None
        if not resumed:
            return
        names = [s.name for s in self.stages]
        name = extra.get("stage", names[-1])
        if name not in names:
            raise CheckpointError(f"The checkpoint to resume was saved in stage '{name}', which "
                                  f"{self.cfg.MODEL.META_ARCHITECTURE} does not have (stages: {', '.join(names)})")
        index = names.index(name)
        epoch = int(extra["epoch"]) + 1
        if epoch >= stage_epochs(self.cfg, self.stages[index]) and index + 1 < len(self.stages):
            self.start_stage = index + 1
            logger.info(f"Stage '{name}' was complete; continuing with stage '{names[index + 1]}'")
            return
        self.start_stage, self.start_epoch, self._pending = index, epoch, extra
        if self.stage_index == index:  # set up already (single-stage model): restore now
            self._restore(extra)

    def _restore(self, extra: Dict[str, Any]) -> None:
        """Optimizer, schedule, scaler, hook and RNG states of the stage being resumed."""
        for key, obj in (("optimizer", self.optimizer), ("scheduler", self.scheduler),
                         ("grad_scaler", self.grad_scaler), ("own_optimizers", self.own_optimizers)):
            if obj is None:
                continue
            if key not in extra:
                raise CheckpointError(f"The checkpoint to resume has no '{key}' state; cannot resume from it")
            try:
                obj.load_state_dict(extra[key])
            except (ValueError, KeyError, RuntimeError) as e:
                raise CheckpointError(f"The checkpoint's '{key}' state does not fit this run "
                                      f"({type(e).__name__}: {e})") from None
        self.load_hooks_state_dict(extra.get("hooks", {}))
        states = extra.get("rng_states") or []
        rank = comm.get_rank()
        if rank < len(states):
            set_rng_state(states[rank])
        else:
            logger.warning("Checkpoint has no RNG state for this rank; randomness will differ")
        self._pending = None

    def train(self, start_epoch: Optional[int] = None, max_epoch: Optional[int] = None,
              iters_per_epoch: Optional[int] = None) -> Mapping[str, Any]:
        """Run the stages from the resumed one on; the arguments override the last stage's loop (tests)."""
        for index in range(self.start_stage, len(self.stages)):
            if self.stage_index != index:
                self.setup_stage(index)
                if self._pending is not None:
                    self._restore(self._pending)
            first = self.start_epoch if index == self.start_stage else 0
            last = index == len(self.stages) - 1
            if self.max_epoch == 0:
                super().train(0, 0, self.iters_per_epoch)
                self.epoch = -1
                state = self.training_state()  # on every rank: it gathers their RNG states
                self.checkpointer.save(f"{self._stage_prefix()}final", **state)  # writes on the main process only
                continue
            super().train(first if start_epoch is None or not last else start_epoch,
                          self.max_epoch if max_epoch is None or not last else max_epoch,
                          self.iters_per_epoch if iters_per_epoch is None or not last else iters_per_epoch)
        hook = self._eval_hook()
        return (hook.latest if hook is not None else None) or {}

    def _eval_hook(self) -> Optional[hooks.EvalHook]:
        return next((h for h in self._hooks if isinstance(h, hooks.EvalHook)), None)

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Periodic evaluation on the test protocols read at start-up (once per run, not per evaluation)."""
        return self.test(self.cfg, self.model, self._test_protocols)

    @classmethod
    def test(cls, cfg: CfgNode, model: nn.Module, protocols=None) -> Dict[str, Dict[str, float]]:
        """Evaluate ``model`` on DATASETS.TESTS (or the given ``build_test_protocols`` list)."""
        from agreid.engine.testing import run_tests

        return run_tests(cfg, model, protocols)
