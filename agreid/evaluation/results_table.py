"""Render per-protocol results as a text table for logs and a markdown table, and save them to disk."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Mapping, Tuple

COLUMNS = (("R1", "Rank-1"), ("R5", "Rank-5"), ("R10", "Rank-10"), ("mAP", "mAP"), ("mINP", "mINP"))
"""(header, result key) of each reported column, in order."""
FEATURE_SEP = "@"
"""Separates the protocol from the feature it scores in the results of a model with named features
(``"SYSU_MM01/all@bn"``); each feature gets its own table."""


def split_by_feature(results: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, Mapping[str, Any]]]:
    """``{feature: {protocol: metrics}}`` in first-seen order; results without a feature come under ``""``."""
    groups: Dict[str, Dict[str, Mapping[str, Any]]] = {}
    for name, row in results.items():
        proto, _, feature = str(name).rpartition(FEATURE_SEP) if FEATURE_SEP in str(name) else (name, "", "")
        groups.setdefault(feature, {})[proto] = row
    return groups


def _cell(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    return "-" if value is None else f"{float(value):.2f}"


GT_MARK = " [GT attributes]"
"""Appended to a protocol scored with ground-truth soft-biometric masking (``uses_gt_attributes``)."""


def _rows(results: Mapping[str, Mapping[str, Any]]):
    return [[str(name) + (GT_MARK if row.get("uses_gt_attributes") else "")] + [_cell(row, key) for _, key in COLUMNS]
            for name, row in results.items()]


def format_results_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """A fixed-width table: one row per protocol name, columns R1, R5, R10, mAP, mINP (percent, 2 decimals).

    Results of named features (``protocol@feature``) give one table per feature, each under its name.
    """
    groups = split_by_feature(results)
    if set(groups) != {""}:
        return "\n\n".join(f"feature '{f}':\n" + _one_table(rows) for f, rows in groups.items())
    return _one_table(results)


def _one_table(results: Mapping[str, Mapping[str, float]]) -> str:
    header = ["protocol"] + [h for h, _ in COLUMNS]
    rows = _rows(results)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def render(cells):
        return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    rendered = [render(r) for r in [header] + rows]
    return "\n".join([rendered[0], "-" * len(rendered[0])] + rendered[1:])


def results_markdown(results: Mapping[str, Mapping[str, float]]) -> str:
    """The same table(s) in markdown, numbers right-aligned."""
    groups = split_by_feature(results)
    if set(groups) != {""}:
        return "\n".join(f"Feature `{f}`:\n\n" + _one_markdown(rows) for f, rows in groups.items())
    return _one_markdown(results)


def _one_markdown(results: Mapping[str, Mapping[str, float]]) -> str:
    header = "| protocol | " + " | ".join(h for h, _ in COLUMNS) + " |"
    align = "|---|" + "---:|" * len(COLUMNS)
    body = ["| " + " | ".join(r) + " |" for r in _rows(results)]
    return "\n".join([header, align] + body) + "\n"


def _to_builtin(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _write_atomic(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_results(results: Mapping[str, Mapping[str, Any]], output_dir: str,
                 name: str = "results") -> Tuple[str, str]:
    """Write ``<name>.json`` (every key) and ``<name>.md`` (the table) into ``output_dir``; returns both paths.

    Each file is written to a temporary file in the same directory and renamed into place, so a
    reader never sees a half-written file.
    """
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, f"{name}.json")
    md_path = os.path.join(output_dir, f"{name}.md")
    _write_atomic(json_path, json.dumps(_to_builtin(results), indent=2, sort_keys=True) + "\n")
    _write_atomic(md_path, results_markdown(results))
    return json_path, md_path
