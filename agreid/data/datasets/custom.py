"""Generic user datasets: a CSV-described layout (``CustomCSV``) and Market-1501-style folders.

Both validate the data once at build time so a wrong path, a malformed row or a missing image
fails with one :class:`DatasetError` naming the file instead of a crash deep inside a data loader.
"""
from __future__ import annotations

import csv
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from agreid.data.records import (AERIAL, GROUND, MODALITIES, VIEWS, VISIBLE, DatasetError, ImageRecord,
                                 Protocol, ReIDDataset, require_dir)
from agreid.registries import DATASET_REGISTRY

DEFAULT_RULE = "market"
REQUIRED_COLUMNS = ("path", "pid", "camid")
OPTIONAL_COLUMNS = ("view", "modality")
QUERY_SUFFIX = "_query.csv"
GALLERY_SUFFIX = "_gallery.csv"

CSV_LAYOUT = """\
  <root>/<dataset_dir>/
    train.csv                    header 'path,pid,camid[,view][,modality][,extra columns...]'
    <PROTOCOL>_query.csv         same columns, one pair of files per evaluation protocol
    <PROTOCOL>_gallery.csv
    rules.csv                    optional lines 'PROTOCOL,rule' (default rule 'market')
    <images>                     'path' is relative to <root>/<dataset_dir>/
  view is one of aerial|ground|wearable|cctv (default ground), modality visible|infrared (default
  visible); extra columns go to ImageRecord.extras; train pids must be >= 0, -1 in a gallery is junk."""

FOLDER_LAYOUT = """\
  <root>/<dataset_dir>/
    train/     <pid>_c<camid>_<anything>.jpg|jpeg|png  (or Market <pid>_c<camid>s<seq>_...; sub-folders ok)
    query/     same naming
    gallery/   same naming
  Cameras listed in the 'aerial_cams' option are aerial, all others ground; pid -1 marks junk
  (skipped in train and query, kept in gallery)."""

_RULE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _fail_at(csv_path: str, line: int, message: str) -> DatasetError:
    return DatasetError(f"{csv_path}, line {line}: {message}")


def _parse_int(value: str, column: str, csv_path: str, line: int) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise _fail_at(csv_path, line, f"column '{column}' must be an integer, got {value!r}") from None


def _parse_choice(value: str, column: str, choices: Sequence[str], default: str, csv_path: str,
                  line: int) -> str:
    value = value.strip().lower()
    if not value:
        return default
    if value not in choices:
        raise _fail_at(csv_path, line, f"column '{column}' must be one of {', '.join(choices)}, "
                                       f"got {value!r}")
    return value


def _read_header(reader, csv_path: str) -> List[str]:
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip().lower() for cell in row]
            break
    else:
        raise DatasetError(f"{csv_path}: the file is empty; a header row "
                           f"'{','.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}' is required.")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise _fail_at(csv_path, reader.line_num,
                       f"header {header} lacks required column(s) {', '.join(missing)}; "
                       f"expected 'path,pid,camid[,view][,modality]'")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated or "" in header:
        raise _fail_at(csv_path, reader.line_num, f"header {header} has empty or repeated column names")
    return header


def read_records_csv(csv_path: str, base_dir: Optional[str] = None) -> List[ImageRecord]:
    """Parse one split CSV (header ``path,pid,camid[,view][,modality]``) into raw-pid records.

    Paths are joined to ``base_dir`` (default: the CSV's folder); extra columns are kept in
    ``ImageRecord.extras``. Image existence is not checked here, see :func:`check_images_exist`.
    """
    if not os.path.isfile(csv_path):
        raise DatasetError(f"expected file '{csv_path}' was not found.\nExpected layout:\n{CSV_LAYOUT}")
    base_dir = os.path.dirname(os.path.abspath(csv_path)) if base_dir is None else base_dir
    records: List[ImageRecord] = []
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = _read_header(reader, csv_path)
        extra_columns = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise _fail_at(csv_path, line, f"expected {len(header)} fields ({','.join(header)}), "
                                               f"got {len(row)}: {row}")
            cells = dict(zip(header, row))
            rel_path = cells["path"].strip()
            if not rel_path:
                raise _fail_at(csv_path, line, "column 'path' is empty")
            records.append(ImageRecord(
                path=os.path.normpath(os.path.join(base_dir, rel_path)),
                pid=_parse_int(cells["pid"], "pid", csv_path, line),
                camid=_parse_int(cells["camid"], "camid", csv_path, line),
                view=_parse_choice(cells.get("view", ""), "view", VIEWS, GROUND, csv_path, line),
                modality=_parse_choice(cells.get("modality", ""), "modality", MODALITIES, VISIBLE,
                                       csv_path, line),
                extras={c: cells[c] for c in extra_columns},
            ))
    return records


def write_records_csv(csv_path: str, records: Iterable[ImageRecord], base_dir: str) -> None:
    """Write ``records`` as a split CSV readable by :func:`read_records_csv` (``extras`` are not written)."""
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        writer.writerows((os.path.relpath(r.path, base_dir).replace(os.sep, "/"), r.pid, r.camid, r.view,
                          r.modality) for r in records)


def check_images_exist(records: Iterable[ImageRecord], source: str) -> None:
    """Raise one :class:`DatasetError` listing the images of ``records`` that are not files on disk."""
    missing = sorted({r.path for r in records if not os.path.isfile(r.path)})
    if missing:
        shown = "\n  ".join(missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(f"{source}: {len(missing)} listed image(s) do not exist:\n  {shown}{more}")


def read_rules_csv(rules_path: str, protocols: Sequence[str]) -> Dict[str, str]:
    """Read the optional ``rules.csv``: lines ``PROTOCOL,rule``; header, blank and ``#`` lines are skipped."""
    rules: Dict[str, str] = {}
    if not os.path.isfile(rules_path):
        return rules
    with open(rules_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if [c.lower() for c in cells] == ["protocol", "rule"]:
                continue
            if len(cells) != 2 or not _RULE_NAME.match(cells[1]):
                raise _fail_at(rules_path, line, f"expected 'PROTOCOL,rule', got {row}")
            if cells[0] not in protocols:
                raise _fail_at(rules_path, line, f"unknown protocol '{cells[0]}'; protocols found: "
                                                 f"{', '.join(protocols)}")
            rules[cells[0]] = cells[1]
    return rules


def discover_protocols(data_dir: str) -> List[str]:
    """Names ``P`` for which both ``P_query.csv`` and ``P_gallery.csv`` exist in ``data_dir``."""
    names = os.listdir(data_dir)
    queries = {n[:-len(QUERY_SUFFIX)] for n in names if n.endswith(QUERY_SUFFIX)}
    galleries = {n[:-len(GALLERY_SUFFIX)] for n in names if n.endswith(GALLERY_SUFFIX)}
    if "" in queries | galleries:
        raise DatasetError(f"'{os.path.join(data_dir, QUERY_SUFFIX)}' or '{GALLERY_SUFFIX}' has an empty "
                           f"protocol name.\nExpected layout:\n{CSV_LAYOUT}")
    unpaired = sorted([(n, GALLERY_SUFFIX) for n in queries - galleries]
                      + [(n, QUERY_SUFFIX) for n in galleries - queries])
    if unpaired:
        name, partner = unpaired[0]
        raise DatasetError(f"expected file '{os.path.join(data_dir, name + partner)}' was not found "
                           f"(protocol '{name}' needs both a query and a gallery file).\n"
                           f"Expected layout:\n{CSV_LAYOUT}")
    if not queries:
        raise DatasetError(f"no '<PROTOCOL>{QUERY_SUFFIX}' / '<PROTOCOL>{GALLERY_SUFFIX}' files found in "
                           f"'{data_dir}'.\nExpected layout:\n{CSV_LAYOUT}")
    return sorted(queries)


def read_csv_layout(data_dir: str,
                    dataset: str = "CustomCSV") -> Tuple[List[ImageRecord], Dict[str, Protocol]]:
    """Read and validate a whole CSV layout: ``(train_raw, protocols)`` ready for :class:`ReIDDataset`.

    This is the single reading path for user CSV data and for the generated demo data.
    """
    require_dir(data_dir, dataset, CSV_LAYOUT)
    train_path = os.path.join(data_dir, "train.csv")
    train = read_records_csv(train_path, data_dir)
    if not train:
        raise DatasetError(f"{dataset}: '{train_path}' lists no images; training needs at least one.")
    for record in train:
        if record.pid < 0:
            raise DatasetError(f"{dataset}: '{train_path}' has negative pid {record.pid} ({record.path}); "
                               f"junk images do not belong in the training split.")
    check_images_exist(train, f"{dataset} ({train_path})")
    names = discover_protocols(data_dir)
    rules = read_rules_csv(os.path.join(data_dir, "rules.csv"), names)
    protocols: Dict[str, Protocol] = {}
    for name in names:
        splits = []
        for suffix in (QUERY_SUFFIX, GALLERY_SUFFIX):
            path = os.path.join(data_dir, name + suffix)
            records = read_records_csv(path, data_dir)
            if not records:
                raise DatasetError(f"{dataset}: '{path}' lists no images.")
            check_images_exist(records, f"{dataset} ({path})")
            splits.append(tuple(records))
        protocols[name] = Protocol(query=splits[0], gallery=splits[1], rule=rules.get(name, DEFAULT_RULE))
    return train, protocols


@DATASET_REGISTRY.register()
class CustomCSV(ReIDDataset):
    """A user dataset described by CSV files under ``<root>/<dataset_dir>/`` (layout in ``CSV_LAYOUT``)."""

    def __init__(self, root: str, dataset_dir: str = "custom") -> None:
        data_dir = os.path.join(root, dataset_dir)
        train, protocols = read_csv_layout(data_dir, "CustomCSV")
        super().__init__("CustomCSV", train, protocols, root=data_dir)


_FOLDER_NAME = re.compile(r"^(-?\d+)_c(\d+)(?:s\d+)?_.*\.(?:jpe?g|png)$", re.IGNORECASE)
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def parse_camera_list(cams: Union[str, int, Iterable[int], None]) -> Tuple[int, ...]:
    """Normalise an ``aerial_cams`` option given as ints, a sequence or a string such as ``"5,6"``."""
    if cams is None:
        return ()
    if isinstance(cams, int):
        return (cams,)
    if isinstance(cams, str):
        parts = [p for p in re.split(r"[\s,;()\[\]]+", cams) if p]
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise DatasetError(f"aerial_cams must list camera ids, got {cams!r}") from None
    return tuple(int(c) for c in cams)


def read_folder_split(split_dir: str, aerial_cams: Sequence[int], skip_junk: bool) -> List[ImageRecord]:
    """Records of every ``<pid>_c<camid>_*.jpg|png`` image under ``split_dir`` (recursively, sorted)."""
    records: List[ImageRecord] = []
    for dirpath, dirnames, filenames in os.walk(split_dir):
        dirnames.sort()
        for fname in sorted(filenames):
            if not fname.lower().endswith(_IMAGE_EXT):
                continue
            path = os.path.join(dirpath, fname)
            match = _FOLDER_NAME.match(fname)
            if match is None:
                raise DatasetError(f"image '{path}' does not follow the '<pid>_c<camid>_<anything>.jpg|png' "
                                   f"naming.\nExpected layout:\n{FOLDER_LAYOUT}")
            pid, camid = int(match.group(1)), int(match.group(2))
            if skip_junk and pid == -1:
                continue
            records.append(ImageRecord(path=path, pid=pid, camid=camid,
                                       view=AERIAL if camid in aerial_cams else GROUND))
    return records


@DATASET_REGISTRY.register()
class CustomFolder(ReIDDataset):
    """Market-1501-style folders ``train/``, ``query/``, ``gallery/``; one protocol ``default`` (rule market).

    pid -1 images (junk) are skipped in ``train`` and ``query`` and kept in ``gallery``.
    """

    def __init__(self, root: str, dataset_dir: str = "custom_folder",
                 aerial_cams: Union[str, int, Iterable[int], None] = ()) -> None:
        data_dir = require_dir(os.path.join(root, dataset_dir), "CustomFolder", FOLDER_LAYOUT)
        cams = parse_camera_list(aerial_cams)
        splits = {}
        for split in ("train", "query", "gallery"):
            split_dir = require_dir(os.path.join(data_dir, split), "CustomFolder", FOLDER_LAYOUT)
            splits[split] = read_folder_split(split_dir, cams, skip_junk=split != "gallery")
            if not splits[split]:
                raise DatasetError(f"CustomFolder: no usable images in '{split_dir}'.\n"
                                   f"Expected layout:\n{FOLDER_LAYOUT}")
        protocol = Protocol(query=tuple(splits["query"]), gallery=tuple(splits["gallery"]), rule=DEFAULT_RULE)
        super().__init__("CustomFolder", splits["train"], {"default": protocol}, root=data_dir)
