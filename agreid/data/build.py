"""Builders that turn the config into training records, data loaders and evaluation protocols."""
from __future__ import annotations

import ast
import logging
import os
from typing import Optional, Any, Dict, List, Sequence, Tuple

import torch
from torch.utils.data import DataLoader

from agreid.data import build_dataset
from agreid.data.common import ReIDImageSet, collate_batch
from agreid.data.records import ImageRecord, Protocol, ReIDDataset, TrackletRecord, records_digest
from agreid.data.samplers import InferenceSampler, TrainBatchSampler
from agreid.data.transforms import build_transforms
from agreid.registries import SAMPLER_REGISTRY
from agreid.utils import comm
from agreid.config.config import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_ROOT = "datasets"
ROOT_ENV = "AGREID_DATASETS"


def resolve_root(root: str) -> str:
    """``DATASETS.ROOT_DIR``, except that the untouched default "datasets" yields to ``$AGREID_DATASETS`` if set."""
    env = os.environ.get(ROOT_ENV, "")
    return env if root == DEFAULT_ROOT and env else root


def parse_options(pairs: Sequence[str], dataset: Optional[str] = None) -> Dict[str, Any]:
    """Turn ``DATASETS.OPTIONS`` strings into one dataset's keyword options.

    "key=value" applies to every dataset, "NAME:key=value" only to dataset NAME (so several
    datasets can be combined, each with its own options). Values are Python literals, else strings.
    """
    options: Dict[str, Any] = {}
    for pair in pairs:
        target, colon, rest = str(pair).partition(":")
        if colon and "=" not in target:
            if dataset is not None and target.strip() != dataset:
                continue
            pair = rest
        key, sep, text = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"DATASETS.OPTIONS entries must look like 'key=value' or 'NAME:key=value', "
                             f"got '{pair}'")
        try:
            options[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            options[key] = text.strip()
    return options


def build_train_set(dataset_names: Sequence[str], root: str,
                    options: Sequence[str]) -> Tuple[List[ImageRecord], int, List[ReIDDataset]]:
    """Concatenate the training lists of ``dataset_names``, shifting each one's pids past the previous ones.

    Returns (records, number of classes, datasets). Raises if the record list differs between ranks.
    """
    if not dataset_names:
        raise ConfigError("DATASETS.NAMES is empty: name at least one training set")
    records: List[ImageRecord] = []
    datasets: List[ReIDDataset] = []
    offset = 0
    for name in dataset_names:
        ds = build_dataset(name, root, **parse_options(options, name))
        logger.info("%s", ds.summary())
        records.extend(r.replace(pid=r.pid + offset) for r in ds.train)
        offset += ds.num_train_pids
        datasets.append(ds)
    digests = comm.all_gather_object(records_digest(records))
    if len(set(digests)) > 1:
        raise RuntimeError(f"The training records differ between ranks (digests by rank: {digests}); "
                           f"a dataset adapter is not deterministic")
    return records, offset, datasets


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)


def labelled_attributes(datasets: Sequence[ReIDDataset], records: Sequence[ImageRecord]) -> Tuple[Tuple[str, int], ...]:
    """The (name, class count) pairs of the attributes the training batches label (``attribute_labels``, e.g.
    SVPR captions), () when they carry none; training sets that label different attributes are an error."""
    from agreid.data.records import BATCH_EXTRAS

    labels = records[0].extras.get(BATCH_EXTRAS, {}).get("attribute_labels") if records else None
    if labels is None or len(labels) == 0:
        return ()
    found = {ds.name: tuple(ds.attribute_classes) for ds in datasets}
    if len(set(found.values())) > 1:
        raise ConfigError(f"The training sets {', '.join(found)} label different attributes; they cannot share "
                          f"attribute heads (train on one, or set MODEL.ATTRIBUTE_NAMES / ATTRIBUTE_CLASSES)")
    return next(iter(found.values()))


def build_train_loader(cfg: Any) -> Tuple[DataLoader, TrainBatchSampler, int]:
    """The training DataLoader, its batch sampler and the number of classes.

    Call ``batch_sampler.set_epoch(e)`` before iterating the loader once per epoch.
    """
    root = resolve_root(cfg.DATASETS.ROOT_DIR)
    records, num_classes, datasets = build_train_set(list(cfg.DATASETS.NAMES), root, list(cfg.DATASETS.OPTIONS))
    sampler = SAMPLER_REGISTRY.get(cfg.DATALOADER.SAMPLER_TRAIN).from_config(
        cfg, records, comm.get_world_size(), comm.get_rank())
    transform = build_transforms(cfg, is_train=True)
    if records and isinstance(records[0], TrackletRecord):
        from agreid.data.video import TrackletSet

        dataset: ReIDImageSet = TrackletSet(records, transform, cfg.INPUT.SEQ_LEN, cfg.INPUT.SAMPLE_METHOD_TRAIN,
                                            cfg.INPUT.DECODER)
    else:
        dataset = ReIDImageSet(records, transform, cfg.INPUT.DECODER)
    dataset.attribute_classes = labelled_attributes(datasets, records)
    loader = _loader(dataset, sampler, int(cfg.DATALOADER.NUM_WORKERS))
    return loader, sampler, num_classes


def build_test_protocols(cfg: Any) -> List[Tuple[str, Protocol]]:
    """Resolve ``DATASETS.TESTS`` entries "NAME" (every protocol, sorted) or "NAME/PROTOCOL" to (full name, protocol)."""
    root = resolve_root(cfg.DATASETS.ROOT_DIR)
    built: Dict[str, ReIDDataset] = {}
    out: List[Tuple[str, Protocol]] = []
    for entry in cfg.DATASETS.TESTS:
        name, _, proto = str(entry).partition("/")
        if name not in built:
            built[name] = build_dataset(name, root, **parse_options(cfg.DATASETS.OPTIONS, name))
        ds = built[name]
        if proto and proto not in ds.protocols:
            raise ConfigError(f"DATASETS.TESTS entry '{entry}': dataset {name} has no protocol '{proto}'. "
                             f"Available: {', '.join(sorted(ds.protocols)) or '(none)'}")
        if not ds.protocols:
            raise ConfigError(f"DATASETS.TESTS entry '{entry}': dataset {name} defines no evaluation protocol")
        for pname in [proto] if proto else sorted(ds.protocols):
            full = f"{name}/{pname}"
            if full not in {n for n, _ in out}:
                out.append((full, ds.protocols[pname]))
    return out


def build_test_loader(records: Sequence[ImageRecord], transform: Any, batch_size: int, num_workers: int,
                      world_size: int, rank: int, decoder: str = "opencv") -> DataLoader:
    """A loader over this rank's contiguous shard of ``records``, in order; ``batch_size`` is per process."""
    sampler = InferenceSampler(len(records), batch_size, world_size, rank)
    return _loader(ReIDImageSet(records, transform, decoder), sampler, num_workers)


def _loader(dataset: ReIDImageSet, batch_sampler: Any, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=collate_batch,
                      persistent_workers=False, worker_init_fn=_worker_init, pin_memory=torch.cuda.is_available(),
                      generator=torch.Generator().manual_seed(0))
