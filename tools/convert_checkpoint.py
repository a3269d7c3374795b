#!/usr/bin/env python
"""Write an agreid checkpoint from one saved by a method's reference code (TransReID, SeCap / VDT, ...).

The model is built from the config alone, so give the class count (and, with SIE, the camera / view
counts) of the checkpoint as overrides. The file is read exactly as ``MODEL.WEIGHTS`` reads it:
recognised from its keys, converted in memory, with the key report (dead reference weights listed).
The output holds ``{"model": state_dict, "converted_from": path, "format": name, "config": yaml}``
and loads with ``MODEL.WEIGHTS`` / ``--eval-only`` like any agreid checkpoint.

Example::

    python tools/convert_checkpoint.py --config-file configs/LAGPeR/secap.yml \\
        --input SeCap_LAGPeR/model_best.pth --output pretrained/secap_lagper_agreid.pth \\
        MODEL.HEADS.NUM_CLASSES 2708
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def convert(config_file: str, src: str, dst: str, opts: list) -> dict:
    """Build the config's model on the CPU, load ``src`` into it, save ``dst`` atomically; return the key report."""
    from agreid.engine import setup_cfg
    from agreid.modeling import build_model
    from agreid.utils.checkpoint import atomic_torch_save, load_checkpoint_file, load_model_weights, STATE_KEYS

    cfg = setup_cfg(config_file, list(opts) + ["MODEL.DEVICE", "cpu", "MODEL.PRETRAIN_PATH", ""])
    model = build_model(cfg).eval()
    data = load_checkpoint_file(src)
    state = next((data[k] for k in STATE_KEYS if isinstance(data.get(k), dict)), data)
    report = load_model_weights(model, state, source=src, allow_partial=cfg.MODEL.ALLOW_PARTIAL_WEIGHTS)
    atomic_torch_save({"model": model.state_dict(), "converted_from": os.path.abspath(src),
                       "format": (report["format"] or ["agreid"])[0], "config": cfg.dump()}, dst)
    logging.getLogger("agreid").info(f"Wrote {dst}")
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="agreid config of the method")
    parser.add_argument("--input", required=True, help="checkpoint saved by the reference code")
    parser.add_argument("--output", required=True, help="agreid checkpoint to write")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    from agreid.utils.errors import UserError, format_user_error
    from agreid.utils.logger import setup_logger

    setup_logger()
    try:
        convert(args.config_file, args.input, args.output, args.opts)
    except UserError as e:
        print(format_user_error(e), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
