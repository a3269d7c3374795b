#!/usr/bin/env python
"""Draw ranked lists of a trained model: query, then its top-k gallery images framed green/red.

Example:
  python tools/visualize_ranks.py --config-file configs/Demo/bagtricks_R18.yml --protocol AGDemo/A2G \\
      --num-queries 8 --topk 10 --output output/demo/ranks_A2G.png MODEL.WEIGHTS output/demo/model_final.pth
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import numpy as np


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE", help="config the model was trained with")
    p.add_argument("--protocol", required=True, help="DATASET/PROTOCOL, e.g. AGDemo/A2G")
    p.add_argument("--query-index", type=int, nargs="*", default=None,
                   help="positions of the queries to draw (default: random ones)")
    p.add_argument("--num-queries", type=int, default=8, help="random queries to draw (default 8)")
    p.add_argument("--topk", type=int, default=10, help="gallery items per row (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed for choosing random queries")
    p.add_argument("--output", required=True, help="PNG file to write")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, e.g. MODEL.WEIGHTS path.pth")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from agreid.data.build import build_test_loader, build_test_protocols
    from agreid.data.transforms import build_transforms
    from agreid.engine import DefaultTrainer, setup_cfg
    from agreid.evaluation import FeatureCollector, compute_distance, inference_on_dataset
    from agreid.evaluation.visualize import render_rank_grid, top_matches
    from agreid.utils.checkpoint import Checkpointer
    from agreid.utils.logger import setup_logger

    cfg = setup_cfg(args.config_file, list(args.opts) + ["DATASETS.TESTS", f'("{args.protocol}",)'])
    setup_logger()
    if not cfg.MODEL.WEIGHTS:
        print("MODEL.WEIGHTS <checkpoint> is required among the overrides", file=sys.stderr)
        return 2
    model = DefaultTrainer.build_model(cfg)
    Checkpointer(model, cfg.OUTPUT_DIR).load(cfg.MODEL.WEIGHTS, checkpointables=[])
    (_, proto), = build_test_protocols(cfg)
    records = list(proto.query) + list(proto.gallery)
    loader = build_test_loader(records, build_transforms(cfg, is_train=False), cfg.TEST.IMS_PER_BATCH,
                               cfg.DATALOADER.NUM_WORKERS, 1, 0, cfg.INPUT.DECODER)
    feats = inference_on_dataset(model, loader, FeatureCollector(records), cfg.TEST.FLIP)["features"]
    nq = len(proto.query)
    dist = compute_distance(feats[:nq], feats[nq:], metric=cfg.TEST.METRIC, normalize=cfg.TEST.FEAT_NORM)
    chosen = args.query_index
    if not chosen:
        rng = np.random.default_rng(args.seed)
        chosen = sorted(rng.choice(nq, size=min(args.num_queries, nq), replace=False).tolist())
    ranked = top_matches(dist, proto.query, proto.gallery, proto.rule, chosen, args.topk)
    render_rank_grid(proto.query, proto.gallery, list(zip(chosen, ranked)), args.output,
                     cell=tuple(cfg.INPUT.SIZE_TEST))
    print(f"Wrote {args.output}: {len(chosen)} queries × top-{args.topk} of {args.protocol}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
