"""Evaluate a model on every protocol named in DATASETS.TESTS and report one table."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from torch import nn

from agreid.config import CfgNode
from agreid.data.records import Protocol, TrackletRecord
from agreid.utils import comm
from agreid.utils.checkpoint import unwrap_model
from agreid.utils.events import current_storage

logger = logging.getLogger("agreid.evaluation")


def scoring_options(cfg: CfgNode):
    """The TEST.* keys that turn features into metrics."""
    from agreid.evaluation import ScoringOptions
    from agreid.evaluation.soft_biometrics import soft_biometric_options

    t = cfg.TEST
    return ScoringOptions(
        metric=t.METRIC, feat_norm=t.FEAT_NORM, max_rank=t.MAX_RANK, roc=t.ROC,
        rerank=(t.RERANK.K1, t.RERANK.K2, t.RERANK.LAMBDA) if t.RERANK.ENABLED else None,
        rerank_max_items=t.RERANK.MAX_ITEMS,
        aqe=(t.AQE.QE_TIME, t.AQE.QE_K, t.AQE.ALPHA) if t.AQE.ENABLED else None,
        soft_biometrics=soft_biometric_options(cfg))


def group_by_dataset(protocols: List[Tuple[str, Protocol]]) -> "OrderedDict[str, Dict[str, Protocol]]":
    groups: "OrderedDict[str, Dict[str, Protocol]]" = OrderedDict()
    for full_name, proto in protocols:
        groups.setdefault(full_name.split("/")[0], {})[full_name] = proto
    return groups


def run_tests(cfg: CfgNode, model: nn.Module,
              protocols: Optional[List[Tuple[str, Protocol]]] = None) -> Dict[str, Dict[str, float]]:
    """One feature pass per test dataset, scored for each of its protocols; print, save and log the table.

    ``protocols`` (from ``build_test_protocols``) lets a training run read its test sets once.
    Returns ``{"DATASET/PROTOCOL": {"Rank-1": …, "mAP": …, …}}`` (percentages) on the main
    process and ``{}`` on the others.
    """
    from agreid.data.build import build_test_loader, build_test_protocols
    from agreid.data.transforms import build_transforms
    from agreid.evaluation import format_results_table, inference_on_dataset, save_results
    from agreid.registries import EVALUATOR_REGISTRY

    model = unwrap_model(model)
    transform = build_transforms(cfg, is_train=False)
    options = scoring_options(cfg)
    results: Dict[str, Dict[str, float]] = {}
    if protocols is None:
        protocols = build_test_protocols(cfg)
    for dataset, group in group_by_dataset(protocols).items():
        evaluator = EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(group, options)
        if evaluator.records and isinstance(evaluator.records[0], TrackletRecord):
            res = _evaluate_tracklets(cfg, model, evaluator, transform)
        else:
            loader = build_test_loader(evaluator.records, transform, cfg.TEST.IMS_PER_BATCH,
                                       cfg.DATALOADER.NUM_WORKERS, comm.get_world_size(), comm.get_rank(),
                                       cfg.INPUT.DECODER)
            res = inference_on_dataset(model, loader, evaluator, flip_test=cfg.TEST.FLIP, desc=dataset)
        if comm.is_main_process():
            results.update(res)
    if comm.is_main_process() and results:
        logger.info("Evaluation results:\n" + format_results_table(results))
        save_results(results, cfg.OUTPUT_DIR)
        if current_storage() is None:
            _write_tensorboard(results, cfg.OUTPUT_DIR)
    return results


def _evaluate_tracklets(cfg: CfgNode, model: nn.Module, evaluator, transform) -> Dict[str, Dict[str, float]]:
    """Video datasets: clip features averaged per tracklet, computed on the main process."""
    import torch

    from agreid.data.video import extract_tracklet_features, takes_frames

    evaluator.reset()
    if comm.is_main_process():
        feats = extract_tracklet_features(model, evaluator.records, transform, cfg.INPUT.SEQ_LEN,
                                          cfg.INPUT.SAMPLE_METHOD_TEST, cfg.TEST.IMS_PER_BATCH,
                                          cfg.INPUT.DECODER, seed=max(cfg.SEED, 0), frame_level=takes_frames(model))
        evaluator.process({"indices": torch.arange(len(evaluator.records))}, feats)
    return evaluator.evaluate()


def _write_tensorboard(results: Dict[str, Dict[str, float]], output_dir: str) -> None:
    """Standalone evaluations (``--eval-only``) log their scalars too; training runs go through the writers."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(os.path.join(output_dir)) as writer:
        for proto, metrics in results.items():
            for name, value in metrics.items():
                writer.add_scalar(f"{proto}/{name}", value, 0)
