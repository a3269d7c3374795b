"""Evaluate a model on every protocol named in DATASETS.TESTS and report one table."""
from __future__ import annotations

import logging
from typing import Dict

from torch import nn

from agreid.config import CfgNode
from agreid.utils import comm
from agreid.utils.checkpoint import unwrap_model

logger = logging.getLogger("agreid.evaluation")


def run_tests(cfg: CfgNode, model: nn.Module) -> Dict[str, Dict[str, float]]:
    """Extract features per protocol, rank with the protocol's rule, print and save the results.

    Returns ``{"DATASET/PROTOCOL": {"Rank-1": …, "mAP": …, …}}`` (percentages) on the main
    process and ``{}`` on the others.
    """
    import agreid.evaluation  # noqa: F401  (registers evaluators and rules)
    from agreid.data.build import build_test_loader, build_test_protocols
    from agreid.data.transforms import build_transforms
    from agreid.evaluation import format_results_table, inference_on_dataset, save_results
    from agreid.registries import EVALUATOR_REGISTRY

    model = unwrap_model(model)
    transform = build_transforms(cfg, is_train=False)
    results: Dict[str, Dict[str, float]] = {}
    for name, proto in build_test_protocols(cfg):
        records = list(proto.query) + list(proto.gallery)
        loader = build_test_loader(records, transform, cfg.TEST.IMS_PER_BATCH, cfg.DATALOADER.NUM_WORKERS,
                                   comm.get_world_size(), comm.get_rank(), cfg.INPUT.DECODER)
        evaluator = EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(
            proto.query, proto.gallery, rule=proto.rule, metric=cfg.TEST.METRIC,
            feat_norm=cfg.TEST.FEAT_NORM, max_rank=cfg.TEST.MAX_RANK)
        res = inference_on_dataset(model, loader, evaluator, flip_test=cfg.TEST.FLIP, desc=name)
        if comm.is_main_process():
            results[name] = res
    if comm.is_main_process() and results:
        logger.info("Evaluation results:\n" + format_results_table(results))
        save_results(results, cfg.OUTPUT_DIR)
    return results
