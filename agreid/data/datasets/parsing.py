"""Shared parsing for list- and file-name-driven adapters (LAGPeR, G2APS-ReID, CP2108, CARGO).

Every failure raises one :class:`DatasetError` that names the offending path and shows the
dataset's expected layout, so a wrong root never surfaces as a traceback inside a data loader.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Callable, Dict, Iterable, List, Mapping, Pattern, Sequence, Tuple, Union

from agreid.data.datasets.custom import check_images_exist
from agreid.data.records import DatasetError, ImageRecord, Protocol

ListLine = Tuple[int, str]
"""(1-based line number, path relative to the list's base folder with '/' separators)."""


def layout_error(dataset: str, message: str, layout: str) -> DatasetError:
    """A :class:`DatasetError` reading ``<dataset>: <message>`` followed by the expected layout."""
    return DatasetError(f"{dataset}: {message}\nExpected layout:\n{layout}")


def find_data_dir(root: str, candidates: Sequence[str], marker: str, dataset: str, layout: str) -> str:
    """The first ``root/<candidate>`` folder that exists, else ``root`` itself if it holds ``marker``.

    The fallback to ``root`` mirrors the reference loaders, which accept the dataset's folders
    placed directly in the data root.
    """
    if not os.path.isdir(root):
        raise layout_error(dataset, f"data root '{root}' was not found.", layout)
    for name in candidates:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            return path
    if os.path.exists(os.path.join(root, marker)):
        return root
    wanted = " or ".join(f"'{os.path.join(root, name)}'" for name in candidates)
    raise layout_error(dataset, f"expected directory {wanted} was not found.", layout)


def require_path(path: str, dataset: str, layout: str, kind: str = "file") -> str:
    """Return ``path`` if it exists as a ``kind`` ("file" or "directory"), else raise."""
    ok = os.path.isfile(path) if kind == "file" else os.path.isdir(path)
    if not ok:
        raise layout_error(dataset, f"expected {kind} '{path}' was not found.", layout)
    return path


def read_path_list(path: str, dataset: str, layout: str) -> List[ListLine]:
    """Non-blank lines of a path-list file, stripped, with Windows separators turned into '/'.

    Lists written on Windows (``os.path.join`` with backslashes) therefore load unchanged.
    """
    require_path(path, dataset, layout)
    lines: List[ListLine] = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.strip().replace("\\", "/")
            if text.startswith("./"):
                text = text[2:]
            if text:
                lines.append((number, text))
    return lines


def search_ints(pattern: Pattern[str], text: str, where: str, dataset: str, layout: str,
                expected: str) -> Tuple[int, ...]:
    """The integer groups of the first ``pattern`` match in ``text``; ``where`` names it in errors."""
    match = pattern.search(text)
    try:
        if match is None:
            raise ValueError
        return tuple(int(g) for g in match.groups())
    except ValueError:
        raise layout_error(dataset, f"cannot parse {where}: '{text}' does not match the naming "
                                    f"{expected}.", layout) from None


def require_records(records: Sequence[ImageRecord], source: str, dataset: str, layout: str,
                    what: str = "images") -> None:
    """Raise if a split came out empty; ``source`` names the folder or list it was read from."""
    if not records:
        raise layout_error(dataset, f"no {what} found in '{source}'.", layout)


def check_files(records: Iterable[ImageRecord], source: str, dataset: str) -> None:
    """Raise one error listing the listed images of ``records`` that are missing on disk."""
    check_images_exist(records, f"{dataset} ({source})")


def select_protocols(requested: Union[str, Sequence[str], None], available: Sequence[str],
                     dataset: str) -> Tuple[str, ...]:
    """Normalise a ``protocols`` option ("A2G,G2A", a sequence, or None for all) against ``available``."""
    if requested is None or requested == "" or requested == ():
        return tuple(available)
    names = [p for p in re.split(r"[\s,;()\[\]'\"]+", requested) if p] if isinstance(requested, str) \
        else [str(p) for p in requested]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ValueError(f"{dataset}: unknown protocol(s) {unknown or names}; "
                         f"available: {', '.join(available)}")
    return tuple(dict.fromkeys(names))


def parse_bool(value: Union[str, bool, int], name: str) -> bool:
    """A boolean option given as a bool, 0/1 or a string such as "false"."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"option {name} must be true or false, got {value!r}")
    return bool(value)


RecordMaker = Callable[[str, str, str], ImageRecord]
"""``maker(absolute_path, relative_path, where)`` building one record; ``where`` names it in errors."""


def read_query_gallery_list(list_path: str, data_dir: str, maker: RecordMaker, dataset: str,
                            layout: str) -> Tuple[Tuple[ImageRecord, ...], Tuple[ImageRecord, ...]]:
    """Split a SeCap-style protocol list into (query, gallery) records.

    A line is a query when the text of its first path component before the first ``_`` is
    ``query`` (``query/``, ``query_c0/``...), otherwise a gallery item; paths are relative to
    ``data_dir``. Either side coming out empty is an error naming the list.
    """
    query: List[ImageRecord] = []
    gallery: List[ImageRecord] = []
    for number, rel in read_path_list(list_path, dataset, layout):
        record = maker(os.path.join(data_dir, *rel.split("/")), rel, f"line {number} of '{list_path}'")
        (query if rel.split("/")[0].split("_")[0] == "query" else gallery).append(record)
    require_records(query, list_path, dataset, layout, "query lines (first folder 'query' or 'query_*')")
    require_records(gallery, list_path, dataset, layout, "gallery lines")
    return tuple(query), tuple(gallery)


def read_secap_layout(root: str, candidates: Sequence[str], dataset: str, layout: str, maker: RecordMaker,
                      protocol_files: Mapping[str, str], protocols: Union[str, Sequence[str], None],
                      verify: Union[bool, str]) -> Tuple[str, List[ImageRecord], Dict[str, Protocol]]:
    """Read a SeCap-style layout: ``(data_dir, train records, protocols)``.

    Train is every ``*.jpg`` exactly one folder below ``bounding_box_train/`` (pid -1 dropped, as
    the reference's non-recursive ``'**/*.jpg'`` glob and junk skip do); each protocol comes from
    its list file via :func:`read_query_gallery_list` and uses the market rule.
    """
    data_dir = find_data_dir(root, candidates, "bounding_box_train", dataset, layout)
    train_dir = require_path(os.path.join(data_dir, "bounding_box_train"), dataset, layout, "directory")
    train: List[ImageRecord] = []
    for path in sorted(glob.glob(os.path.join(glob.escape(train_dir), "*", "*.jpg"))):
        rel = os.path.relpath(path, data_dir).replace(os.sep, "/")
        record = maker(path, rel, f"training image '{path}'")
        if record.pid != -1:
            train.append(record)
    require_records(train, os.path.join(train_dir, "<subdir>", "*.jpg"), dataset, layout)
    check = parse_bool(verify, "check_files")
    built: Dict[str, Protocol] = {}
    for name in select_protocols(protocols, list(protocol_files), dataset):
        list_path = os.path.join(data_dir, protocol_files[name])
        query, gallery = read_query_gallery_list(list_path, data_dir, maker, dataset, layout)
        if check:
            check_files(query + gallery, list_path, dataset)
        built[name] = Protocol(query=query, gallery=gallery, rule="market")
    return data_dir, train, built
