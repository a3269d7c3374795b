#!/usr/bin/env python
"""Train or evaluate any agreid model from a config file: the project's one entry point.

Run with ``--help`` for every flag; trailing ``KEY VALUE`` pairs override the config.
"""
from __future__ import annotations

import logging
import sys

from agreid.engine import DefaultTrainer, default_argument_parser, default_setup, launch, setup_cfg
from agreid.config import ConfigError
from agreid.data import DatasetError
from agreid.utils.checkpoint import Checkpointer


def main(args) -> dict:
    cfg = setup_cfg(args.config_file, args.opts)
    cfg = default_setup(cfg, args)
    if args.eval_only:
        if not cfg.MODEL.WEIGHTS:
            raise SystemExit("--eval-only needs MODEL.WEIGHTS <checkpoint> among the overrides")
        model = DefaultTrainer.build_model(cfg)
        Checkpointer(model, cfg.OUTPUT_DIR).load(cfg.MODEL.WEIGHTS, checkpointables=[])
        return DefaultTrainer.test(cfg, model)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def cli(argv=None) -> None:
    args = default_argument_parser().parse_args(argv)
    try:
        launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    except (ConfigError, DatasetError) as e:
        logger = logging.getLogger("agreid")
        if logger.handlers:
            logger.error(str(e))
        sys.exit(f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    cli()
