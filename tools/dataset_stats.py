#!/usr/bin/env python
"""Verify a dataset on disk: build it and print ids / images / cameras per split beside the published counts.

Differences from the published counts are warnings (exit 0); a dataset that cannot be loaded exits 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from agreid.data import DatasetError, ImageRecord, ReIDDataset, build_dataset
from agreid.data.build import DEFAULT_ROOT, parse_options, resolve_root
from agreid.data.datasets import published_counts  # importing the package registers every adapter
from agreid.registries import DATASET_REGISTRY

FIELDS = ("ids", "images", "cameras")
TRIAL_SUFFIX = "(trial0)"


class Row(NamedTuple):
    """One subset's counts on disk and, where known, the published ones."""

    subset: str
    counts: Tuple[int, int, int]
    published: Tuple[Optional[int], Optional[int], Optional[int]]

    @property
    def differences(self) -> List[str]:
        return [f for f, have, want in zip(FIELDS, self.counts, self.published) if want is not None and have != want]

    @property
    def compared(self) -> int:
        return sum(want is not None for want in self.published)


def count(records: Sequence[ImageRecord]) -> Tuple[int, int, int]:
    """(distinct pids, records, distinct camids) of one subset."""
    return len({r.pid for r in records}), len(records), len({r.camid for r in records})


def dataset_subsets(ds: ReIDDataset) -> Tuple[List[Tuple[str, Sequence[ImageRecord]]], List[str]]:
    """The subsets to count, as in ``ReIDDataset.summary``, plus trial-0 draws of multi-trial protocols.

    Also returns one note per multi-trial protocol saying which rows are the full pool and which the draw.
    """
    subsets: List[Tuple[str, Sequence[ImageRecord]]] = [("train", ds.train)]
    notes: List[str] = []
    for pname in sorted(ds.protocols):
        proto = ds.protocols[pname]
        for position, side in enumerate(("query", "gallery")):
            records = getattr(proto, side)
            subsets.append((f"{pname}/{side}", records))
            drawn = proto.trials[0][position] if proto.trials else None
            if drawn is not None:
                subsets.append((f"{pname}/{side}{TRIAL_SUFFIX}", tuple(records[i] for i in drawn)))
                notes.append(f"{pname} has {len(proto.trials)} trials: {pname}/{side} counts the full pool, "
                             f"{pname}/{side}{TRIAL_SUFFIX} the {side} drawn for trial 0.")
    return subsets, notes


def compare(ds: ReIDDataset, published: Mapping[str, Any]) -> Tuple[List[Row], List[str]]:
    """Rows for every subset of ``ds`` against ``published`` (one dataset's entry), and notes."""
    subsets, notes = dataset_subsets(ds)
    rows = []
    for subset, records in subsets:
        entry = published.get(subset) or {}
        rows.append(Row(subset, count(records), tuple(entry.get(f) for f in FIELDS)))
    counted = {subset for subset, _ in subsets}
    absent = [s for s, v in published.items() if isinstance(v, Mapping) and s not in counted
              and any(v.get(f) is not None for f in FIELDS)]
    if absent:
        notes.append(f"published subsets not in the loaded dataset (not compared): {', '.join(absent)}")
    return rows, notes


def _cell(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


def format_table(rows: Sequence[Row]) -> List[str]:
    """The table: counts on disk, published counts ("-" if unknown) and a ``!=`` column naming differences."""
    width = max([len("subset")] + [len(r.subset) for r in rows]) + 2
    head = (f"{'subset':<{width}}" + "".join(f"{f:>9}" for f in FIELDS)
            + "".join(f"{'pub ' + f:>13}" for f in FIELDS) + "  differs")
    lines = [head]
    for r in rows:
        diff = r.differences
        lines.append(f"{r.subset:<{width}}" + "".join(f"{v:>9}" for v in r.counts)
                     + "".join(f"{_cell(v):>13}" for v in r.published)
                     + (f"  != {', '.join(diff)}" if diff else ""))
    return lines


def summary_line(name: str, rows: Sequence[Row], has_entry: bool) -> str:
    """The final verdict: how many published numbers differ, or that none were available."""
    compared = sum(r.compared for r in rows)
    if not has_entry:
        return f"no published counts for {name}"
    if not compared:
        return f"no published numbers to compare for {name} (see the source note)"
    diffs = sum(len(r.differences) for r in rows)
    if diffs:
        noun = "difference" if diffs == 1 else "differences"
        return f"{diffs} {noun} from the published counts ({compared} published numbers compared)"
    return f"matches the published counts ({compared} published numbers compared)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dataset_stats.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build a registered dataset from disk and print ids / images / cameras per split\n"
                    "(train; each protocol's query and gallery) beside the published counts.\n"
                    "Multi-trial protocols also get a row for the query or gallery drawn in trial 0.\n"
                    "Differences are flagged with '!=' and summarised but are warnings: the exit code\n"
                    "is 0 whenever the dataset loads and 2 when it cannot be loaded (missing or\n"
                    "malformed files, an unknown dataset or a bad option).",
        epilog="examples:\n"
               "  python tools/dataset_stats.py --list\n"
               "  python tools/dataset_stats.py --dataset RegDB --root datasets --option trial=3\n"
               "  python tools/dataset_stats.py --dataset AGDemo --root /tmp/demo --option num_train_ids=8")
    parser.add_argument("--list", action="store_true", help="print the registered dataset names and exit")
    parser.add_argument("--dataset", metavar="NAME", help="registered dataset name (see --list)")
    parser.add_argument("--root", metavar="DIR", default=DEFAULT_ROOT,
                        help=f"data root holding the dataset folder (default '{DEFAULT_ROOT}', or "
                             f"$AGREID_DATASETS when set)")
    parser.add_argument("--option", metavar="KEY=VALUE", action="append", default=[],
                        help="adapter option, repeatable; values are Python literals, else strings "
                             "(as DATASETS.OPTIONS, e.g. trial=3 or num_trials=1)")
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the tool on ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    names = list(DATASET_REGISTRY)
    if args.list:
        print("\n".join(names))
        return 0
    if not args.dataset:
        parser.print_usage(sys.stderr)
        return _fail("--dataset NAME is required (or --list)")
    if args.dataset not in names:
        return _fail(f"no dataset named '{args.dataset}'. Registered: {', '.join(names)}")
    try:
        options: Dict[str, Any] = parse_options(args.option, args.dataset)
    except ValueError as e:
        return _fail(str(e).replace("DATASETS.OPTIONS entries", "--option values"))
    root = resolve_root(args.root)
    try:
        ds = build_dataset(args.dataset, root, **options)
    except DatasetError as e:
        print(f"DatasetError: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        return _fail(str(e))
    entry: Mapping[str, Any] = published_counts.PUBLISHED.get(args.dataset, {})
    rows, notes = compare(ds, entry)
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
    print(f"Dataset {args.dataset} at {ds.root or root}" + (f" (options: {shown})" if shown else ""))
    print("\n".join(format_table(rows)))
    if entry.get("source"):
        notes.insert(0, f"published counts: {entry['source']}")
    for note in notes:
        print(f"note: {note}")
    print(summary_line(args.dataset, rows, bool(entry)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
