"""Compact listings of state-dict keys for load reports (``blocks.{0..11}.attn.qkv.{weight,bias}``)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple


def _ranges(numbers: Sequence[int]) -> str:
    nums = sorted(set(numbers))
    parts, start = [], nums[0]
    for prev, cur in zip(nums, nums[1:] + [None]):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}..{prev}")
            start = cur
    return ",".join(parts)


def group_keys(keys: Sequence[str]) -> List[str]:
    """Collapse keys differing only in numeric indices and then in their last name into compact patterns."""
    by_pattern: Dict[Tuple[str, ...], List[List[int]]] = OrderedDict()
    for key in keys:
        parts = key.split(".")
        pattern = tuple("#" if p.isdigit() else p for p in parts)
        by_pattern.setdefault(pattern, []).append([int(p) for p in parts if p.isdigit()])
    indexed = []
    for pattern, index_lists in by_pattern.items():
        columns = list(zip(*index_lists)) if index_lists and index_lists[0] else []
        it = iter("{" + _ranges(c) + "}" if len(set(c)) > 1 else str(c[0]) for c in columns)
        indexed.append(".".join(next(it) if p == "#" else p for p in pattern))
    by_parent: Dict[str, List[str]] = OrderedDict()
    for key in indexed:
        parent, _, leaf = key.rpartition(".")
        by_parent.setdefault(parent, []).append(leaf)
    out = []
    for parent, leaves in by_parent.items():
        leaf = leaves[0] if len(leaves) == 1 else "{" + ",".join(leaves) + "}"
        out.append(f"{parent}.{leaf}" if parent else leaf)
    return out
