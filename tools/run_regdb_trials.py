#!/usr/bin/env python
"""Train and evaluate one model per RegDB split, then report the mean and standard deviation over the splits.

RegDB's protocol (and every visible-infrared paper's table) averages ten models, one per ``idx`` split
t = 1..10. This runs ``tools/train_net.py`` once per split, each in its own process, with
``DATASETS.OPTIONS ["RegDB:trial=<t>"]`` and ``OUTPUT_DIR <output>/trial<t>``, then
``tools/aggregate_results.py`` over the runs (``<output>/aggregate.json`` and ``.md``).

Example:
  python tools/run_regdb_trials.py --config-file configs/RegDB/agw.yml --output output/regdb/agw \\
      MODEL.PRETRAIN_PATH /models/resnet50-19c8e357.pth
  python tools/run_regdb_trials.py --config-file configs/RegDB/agw.yml --output output/regdb/agw --trials 3,4 \\
      --train-args "--num-gpus 2"
Add ``--resume`` to continue unfinished splits (finished ones, with a results.json, are skipped then).
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from typing import List, Optional

TOOLS = os.path.dirname(os.path.abspath(__file__))
TRIALS = list(range(1, 11))


def trial_command(config: str, trial: int, output: str, opts: List[str], train_args: List[str],
                  resume: bool) -> List[str]:
    """The ``train_net.py`` command line of one split."""
    cmd = [sys.executable, os.path.join(TOOLS, "train_net.py"), "--config-file", config, *train_args]
    if resume:
        cmd.append("--resume")
    return cmd + [*opts, "DATASETS.OPTIONS", f'["RegDB:trial={trial}"]', "OUTPUT_DIR", trial_dir(output, trial)]


def trial_dir(output: str, trial: int) -> str:
    return os.path.join(output, f"trial{trial}")


def _trial_list(text: str) -> List[int]:
    try:
        trials = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated split numbers such as 1,2,3, got '{text}'") \
            from None
    bad = [t for t in trials if t not in TRIALS]
    if bad or not trials:
        raise argparse.ArgumentTypeError(f"RegDB splits are 1..10, got '{text}'")
    return trials


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE", help="a RegDB config, e.g. configs/RegDB/agw.yml")
    p.add_argument("--output", required=True, help="folder receiving trial<t>/ per split and the aggregate")
    p.add_argument("--trials", type=_trial_list, default=TRIALS, help="splits to run, comma-separated (default: 1..10)")
    p.add_argument("--train-args", default="", help="extra train_net.py flags, quoted, e.g. \"--num-gpus 2\"")
    p.add_argument("--resume", action="store_true", help="skip finished splits, resume the others")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides (KEY VALUE) for every split")
    args = p.parse_args(argv)
    opts = [o for o in args.opts if o != "--"]
    if any(o in ("DATASETS.OPTIONS", "OUTPUT_DIR") for o in opts):
        p.error("DATASETS.OPTIONS and OUTPUT_DIR are set per split by this script; do not override them")
    for trial in args.trials:
        if args.resume and os.path.isfile(os.path.join(trial_dir(args.output, trial), "results.json")):
            print(f"RegDB split {trial}: finished, skipped", flush=True)
            continue
        cmd = trial_command(args.config_file, trial, args.output, opts, shlex.split(args.train_args), args.resume)
        print(f"RegDB split {trial}: {shlex.join(cmd)}", flush=True)
        code = subprocess.call(cmd)
        if code != 0:
            print(f"RegDB split {trial} failed (exit code {code}); stopping", file=sys.stderr)
            return code
    runs = [trial_dir(args.output, t) for t in args.trials]
    return subprocess.call([sys.executable, os.path.join(TOOLS, "aggregate_results.py"), *runs,
                            "--output", args.output])


if __name__ == "__main__":
    sys.exit(main())
