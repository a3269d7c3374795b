#!/usr/bin/env python
"""Train or evaluate any agreid model from a config file: the project's one entry point.

Run with ``--help`` for every flag; trailing ``KEY VALUE`` pairs override the config. Bad input
(config, data, weights, output folder, launch flags) ends with one ``Name: message`` line and exit
code 2, and leaves an earlier run's OUTPUT_DIR as it was; a bug keeps its traceback.
"""
from __future__ import annotations

import logging
import sys

from agreid.config import ConfigError
from agreid.engine import DefaultTrainer, default_argument_parser, default_setup, launch, prepare_output_dir, setup_cfg
from agreid.utils.checkpoint import Checkpointer
from agreid.utils.errors import UserError, format_user_error


def main(args) -> dict:
    cfg = setup_cfg(args.config_file, args.opts)
    if args.eval_only and not cfg.MODEL.WEIGHTS:
        raise ConfigError("--eval-only needs MODEL.WEIGHTS <checkpoint> among the overrides")
    cfg = default_setup(cfg, args)
    if args.eval_only:
        from agreid.data.build import build_test_protocols

        protocols = build_test_protocols(cfg)
        cfg = DefaultTrainer.eval_only_config(cfg, protocols)
        model = DefaultTrainer.build_model(cfg)
        Checkpointer(model, cfg.OUTPUT_DIR, save_to_disk=False).load(
            cfg.MODEL.WEIGHTS, checkpointables=[], allow_partial=cfg.MODEL.ALLOW_PARTIAL_WEIGHTS)
        prepare_output_dir(cfg)
        return DefaultTrainer.test(cfg, model, protocols)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    prepare_output_dir(trainer.cfg)
    return trainer.train()


def cli(argv=None) -> None:
    args = default_argument_parser().parse_args(argv)
    try:
        device = setup_cfg(args.config_file, args.opts).MODEL.DEVICE
        launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,), device=device)
    except UserError as e:
        line = format_user_error(e)
        name = getattr(e, "display_name", None)
        if name:
            line = f"{name}: {e}"
        record = logging.LogRecord("agreid", logging.ERROR, __file__, 0, line, None, None)
        for handler in logging.getLogger("agreid").handlers:  # the run's log.txt, if it was started
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        print(line, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
