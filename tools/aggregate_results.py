#!/usr/bin/env python
"""Mean and standard deviation of several runs' results, e.g. RegDB's ten splits (one model per split).

Example:
  for t in $(seq 1 10); do python tools/train_net.py --config-file CFG DATASETS.OPTIONS '["RegDB:trial='$t'"]' \\
      OUTPUT_DIR output/regdb/trial$t; done
  python tools/aggregate_results.py output/regdb/trial*
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Mapping, Optional

import numpy as np

METRICS = ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP")


def aggregate(runs: List[Mapping[str, Mapping[str, float]]]) -> Dict[str, Dict[str, float]]:
    """Per protocol present in every run: each metric's mean and ``<metric>_std`` over the runs."""
    common = set(runs[0]).intersection(*runs[1:]) if runs else set()
    out: Dict[str, Dict[str, float]] = {}
    for proto in sorted(common):
        row: Dict[str, float] = {}
        for key in runs[0][proto]:
            if key.endswith("_std") or not all(key in r[proto] for r in runs):
                continue
            values = np.array([float(r[proto][key]) for r in runs])
            row[key], row[f"{key}_std"] = float(values.mean()), float(values.std())
        row["num_runs"] = len(runs)
        out[proto] = row
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="OUTPUT_DIRs (holding results.json) or results.json files")
    p.add_argument("--output", help="also write the aggregate as JSON and markdown into this folder")
    args = p.parse_args(argv)
    runs = []
    for path in args.runs:
        file = os.path.join(path, "results.json") if os.path.isdir(path) else path
        if not os.path.isfile(file):
            print(f"No results.json at {file}", file=sys.stderr)
            return 2
        with open(file, encoding="utf-8") as f:
            runs.append(json.load(f))
    result = aggregate(runs)
    if not result:
        print("The runs share no protocol", file=sys.stderr)
        return 2
    print(f"{'protocol':<20}" + "".join(f"{m:>18}" for m in METRICS) + f"   ({len(runs)} runs)")
    for proto, row in result.items():
        cells = "".join(f"{row[m]:>10.2f} ± {row[m + '_std']:<5.2f}" if m in row else f"{'-':>18}" for m in METRICS)
        print(f"{proto:<20}{cells}")
    if args.output:
        from agreid.evaluation import save_results

        save_results(result, args.output, name="aggregate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
