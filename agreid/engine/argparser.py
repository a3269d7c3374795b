"""The command-line interface shared by ``tools/train_net.py`` and project scripts."""
from __future__ import annotations

import argparse
from typing import Optional

EPILOG = """examples:
  train on one process (GPU if present, else CPU):
    python tools/train_net.py --config-file configs/Demo/bagtricks_R18.yml
  override config keys (KEY VALUE pairs after the flags):
    python tools/train_net.py --config-file CFG SOLVER.BASE_LR 0.0007 OUTPUT_DIR out/run2
  evaluate a trained model:
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS out/model_final.pth
  continue an interrupted run from its OUTPUT_DIR:
    python tools/train_net.py --config-file CFG --resume
  4 GPUs on one machine / 2 machines with 8 GPUs each:
    python tools/train_net.py --config-file CFG --num-gpus 4
    python tools/train_net.py --config-file CFG --num-gpus 8 --num-machines 2 --machine-rank 0 \\
        --dist-url tcp://HOST0:29500      (and --machine-rank 1 on the second machine)
  under torchrun, --num-gpus etc. are ignored: torchrun --nproc_per_node 4 tools/train_net.py ...
"""


def _int_at_least(minimum: int):
    """An argparse type: a whole number not below ``minimum`` (a clear usage error otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def default_argument_parser(description: Optional[str] = None) -> argparse.ArgumentParser:
    """Parser for ``--config-file``, evaluation, resume, distributed flags and trailing overrides."""
    parser = argparse.ArgumentParser(
        description=description or "agreid training and evaluation",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE",
                        help="YAML config; may inherit from others through _BASE_")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUTPUT_DIR from its last checkpoint (model, optimizer, "
                             "schedule, RNG, epoch); MODEL.WEIGHTS is then ignored")
    parser.add_argument("--eval-only", action="store_true",
                        help="only evaluate MODEL.WEIGHTS on DATASETS.TESTS")
    parser.add_argument("--num-gpus", type=_int_at_least(1), default=1,
                        help="processes per machine: one per GPU (gloo CPU processes without a GPU)")
    parser.add_argument("--num-machines", type=_int_at_least(1), default=1, help="number of machines in the job")
    parser.add_argument("--machine-rank", type=_int_at_least(0), default=0,
                        help="rank of this machine (0-based)")
    parser.add_argument("--dist-url", default="auto",
                        help="tcp://HOST:PORT of machine 0, env://, or auto (free local port, one machine)")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.IMS_PER_BATCH 32")
    return parser
