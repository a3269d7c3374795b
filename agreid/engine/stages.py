"""The engine side of multi-stage training (the model side is :mod:`agreid.modeling.stages`).

:func:`stage_config` gives a stage its solver, :class:`TrainingContext` is what ``begin_stage`` receives, and
:class:`TensorBatches` is the reshuffled-per-epoch loader over precomputed tensors (CLIP-ReID's stage 1 over
cached image features). :class:`agreid.engine.DefaultTrainer` runs the stages in order.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

import torch
from tqdm import tqdm

from agreid.config import CfgNode, ConfigError
from agreid.modeling.stages import StageSpec
from agreid.utils import comm
from agreid.utils.checkpoint import atomic_torch_save
from agreid.utils.errors import CheckpointError

logger = logging.getLogger("agreid.engine")

CACHE_DIR = "cache"


def stage_config(cfg: CfgNode, spec: StageSpec) -> CfgNode:
    """``cfg`` with SOLVER's keys replaced by those of SOLVER.<spec.solver> (unchanged when it is "")."""
    if not spec.solver:
        return cfg
    if spec.solver not in cfg.SOLVER or not isinstance(cfg.SOLVER[spec.solver], CfgNode):
        raise ConfigError(f"Stage '{spec.name}' reads its solver from SOLVER.{spec.solver}, which the config lacks")
    out = cfg.clone()
    out.defrost()
    for key, value in cfg.SOLVER[spec.solver].items():
        out.SOLVER[key] = value
    out.freeze()
    return out


def stage_epochs(cfg: CfgNode, spec: StageSpec) -> int:
    """Epochs of a stage: ``spec.epochs`` when set, else its solver's MAX_EPOCH."""
    return int(spec.epochs) if spec.epochs is not None else int(stage_config(cfg, spec).SOLVER.MAX_EPOCH)


class TensorBatches:
    """Batches (dicts) of rows of equal-length tensors; the order is a pure function of (seed, epoch).

    With several processes each takes every ``world_size``-th row of the permutation, so the ranks cover the
    rows once per epoch. ``drop_last`` False keeps the last, smaller batch (CLIP-ReID's stage-1 loop does).
    """

    def __init__(self, tensors: Dict[str, torch.Tensor], batch_size: int, shuffle: bool = True,
                 drop_last: bool = False, seed: int = 0, world_size: int = 1, rank: int = 0) -> None:
        lengths = {k: len(v) for k, v in tensors.items()}
        if not tensors or len(set(lengths.values())) != 1:
            raise ValueError(f"TensorBatches needs tensors of one length, got {lengths}")
        if batch_size < 1:
            raise ValueError(f"TensorBatches needs batch_size >= 1, got {batch_size}")
        self.tensors = dict(tensors)
        self.num_rows = next(iter(lengths.values()))
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.seed, self.world_size, self.rank = int(seed), int(world_size), int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def batch_sampler(self) -> "TensorBatches":  # the trainer reseeds ``loader.batch_sampler`` each epoch
        return self

    def _rows(self) -> torch.Tensor:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.num_rows, generator=gen)
        else:
            order = torch.arange(self.num_rows)
        return order[self.rank::self.world_size]

    def __len__(self) -> int:
        n = len(range(self.rank, self.num_rows, self.world_size))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        rows = self._rows()
        for i in range(len(self)):
            idx = rows[i * self.batch_size:(i + 1) * self.batch_size]
            yield {k: v[idx] for k, v in self.tensors.items()}


class TrainingContext:
    """What a model's ``begin_stage`` gets: the stage's records and batch size, loaders and a run cache."""

    def __init__(self, cfg: CfgNode, device: torch.device, train_records: Sequence[Any], batch_size: int,
                 output_dir: str, seed: int = 0) -> None:
        from agreid.data.transforms import build_transforms

        self.device = device
        self.train_records = list(train_records)
        self.batch_size = int(batch_size)
        self.output_dir = output_dir
        self.seed = int(seed)
        self.test_transform = build_transforms(cfg, is_train=False)
        self.decoder = cfg.INPUT.DECODER
        self.num_workers = int(cfg.DATALOADER.NUM_WORKERS)
        self.test_batch_size = int(cfg.TEST.IMS_PER_BATCH)
        self.seq_len = int(cfg.INPUT.SEQ_LEN)
        self.test_sample_method = cfg.INPUT.SAMPLE_METHOD_TEST

    def inference_loader(self, records: Sequence[Any]):
        """All of ``records`` in order, with the test transforms, in batches of TEST.IMS_PER_BATCH; tracklets give
        one clip each (INPUT.SEQ_LEN frames by INPUT.SAMPLE_METHOD_TEST)."""
        from agreid.data.build import _loader, build_test_loader
        from agreid.data.records import TrackletRecord
        from agreid.data.samplers.inference import InferenceSampler

        records = list(records)
        if records and isinstance(records[0], TrackletRecord):
            from agreid.data.video import TrackletSet

            dataset = TrackletSet(records, self.test_transform, self.seq_len, self.test_sample_method, self.decoder)
            return _loader(dataset, InferenceSampler(len(records), self.test_batch_size), self.num_workers)
        return build_test_loader(records, self.test_transform, self.test_batch_size, self.num_workers, 1, 0,
                                 self.decoder)

    def tensor_loader(self, tensors: Dict[str, torch.Tensor], batch_size: int, shuffle: bool = True,
                      drop_last: bool = False) -> TensorBatches:
        return TensorBatches(tensors, batch_size, shuffle, drop_last, self.seed, comm.get_world_size(),
                             comm.get_rank())

    def cache_path(self, key: str) -> str:
        return os.path.join(self.output_dir, CACHE_DIR, f"{key}.pth")

    def cached(self, key: str, compute: Callable[[], Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """``compute()`` once per run: written to OUTPUT_DIR/cache/<key>.pth (atomically, main process) and read
        back, on the CPU, when a resumed run asks again."""
        path = self.cache_path(key)
        if os.path.isfile(path):
            try:
                data = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # a damaged cache is recomputed, never trusted
                logger.warning(f"Cache {path} is unreadable ({type(e).__name__}: {e}); recomputing it")
            else:
                if isinstance(data, dict) and all(torch.is_tensor(v) for v in data.values()):
                    logger.info(f"Read cached '{key}' from {path}")
                    return data
                raise CheckpointError(f"Cache {path} does not hold a dict of tensors; delete it to recompute")
        data = compute()
        if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
            raise TypeError(f"cached('{key}', compute): compute() must return a dict of tensors")
        data = {k: v.detach().cpu() for k, v in data.items()}
        if comm.is_main_process():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_torch_save(data, path)
            logger.info(f"Cached '{key}' in {path}")
        return data

    def progress(self, iterable, desc: str, total: Optional[int] = None):
        """``iterable`` with a tqdm bar on an interactive main-process console."""
        return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                    disable=None if comm.is_main_process() else True)


__all__ = ["stage_config", "stage_epochs", "TensorBatches", "TrainingContext", "CACHE_DIR"]
