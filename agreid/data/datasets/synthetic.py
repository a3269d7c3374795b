"""AGDemo: a procedurally drawn aerial-ground person dataset, generated on first use so demos need no data.

Every identity has a stable outfit; ground cameras see upright full bodies, aerial cameras see
blurred, rotated, foreshortened top-down views. The result is read back through the CustomCSV code.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from agreid.data.opencv import cv2

from agreid.data.datasets.agdemo_render import (AERIAL_CAMS, GROUND_CAMS, camera_style, make_identity,
                                                render_image, seeded_rng)
from agreid.data.datasets.custom import read_csv_layout, write_records_csv
from agreid.data.records import AERIAL, GROUND, DatasetError, ImageRecord, ReIDDataset

GENERATOR_VERSION = 1
MARKER = "agdemo.json"


def _read_marker(out_dir: str) -> Optional[dict]:
    try:
        with open(os.path.join(out_dir, MARKER)) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _write_dataset(out_dir: str, params: Dict[str, int]) -> None:
    seed, n, num_train = params["seed"], params["images_per_view"], params["num_train_ids"]
    splits = {"train": range(1, num_train + 1),
              "test": range(num_train + 1, num_train + params["num_test_ids"] + 1)}
    styles = {cam: camera_style(seed, cam) for cam in GROUND_CAMS + AERIAL_CAMS}
    records: Dict[str, List[ImageRecord]] = {"train": [], "test": []}
    for split, pids in splits.items():
        os.makedirs(os.path.join(out_dir, "images", split))
        for pid in pids:
            ident, order = make_identity(seed, pid), seeded_rng(seed, 4, pid)
            for view_code, (view, cams) in enumerate(((GROUND, GROUND_CAMS), (AERIAL, AERIAL_CAMS))):
                for k, cam in enumerate(np.resize(order.permutation(cams), n).tolist()):
                    img = render_image(ident, styles[cam], view == AERIAL, params["height"], params["width"],
                                       seeded_rng(seed, 2, pid, view_code, k))
                    index = len(records["train"]) + len(records["test"])
                    path = os.path.join(out_dir, "images", split, f"{pid:04d}_c{cam}_{index:06d}.jpg")
                    if not cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                        raise OSError(f"could not write image '{path}'")
                    records[split].append(ImageRecord(path, pid, cam, view))
    write_records_csv(os.path.join(out_dir, "train.csv"), records["train"], out_dir)
    aerial = [r for r in records["test"] if r.view == AERIAL]
    ground = [r for r in records["test"] if r.view == GROUND]
    for name, query, gallery in (("A2G", aerial, ground), ("G2A", ground, aerial)):
        write_records_csv(os.path.join(out_dir, f"{name}_query.csv"), query, out_dir)
        write_records_csv(os.path.join(out_dir, f"{name}_gallery.csv"), gallery, out_dir)
    with open(os.path.join(out_dir, MARKER), "w") as handle:
        json.dump(params, handle, sort_keys=True, indent=1)


def generate_agdemo(out_dir: str, num_train_ids: int = 60, num_test_ids: int = 40, images_per_view: int = 8,
                    seed: int = 0, height: int = 128, width: int = 64) -> str:
    """Write AGDemo into ``out_dir`` in the CustomCSV layout unless these parameters are already there.

    Writes into a temporary sibling directory and renames it into place, so readers never see a
    partial dataset; ``agdemo.json`` records the parameters and a different set regenerates.
    """
    sizes = dict(num_train_ids=num_train_ids, num_test_ids=num_test_ids, images_per_view=images_per_view)
    params = dict(version=GENERATOR_VERSION, seed=int(seed), height=int(height), width=int(width),
                  **{k: int(v) for k, v in sizes.items()})
    if min(params[k] for k in sizes) < 1 or params["seed"] < 0 or min(params["height"], params["width"]) < 16:
        raise ValueError(f"AGDemo needs positive sizes, a seed >= 0 and images of 16+ pixels, got {params}")
    out_dir = os.path.abspath(out_dir)
    existing = _read_marker(out_dir)
    if existing == params:
        return out_dir
    if existing is None and os.path.exists(out_dir):
        raise DatasetError(f"'{out_dir}' exists but holds no {MARKER}, so it is not generated AGDemo data; "
                           f"remove it or choose another directory.")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".agdemo-new-", dir=parent)
    os.chmod(tmp, 0o755)
    trash = tempfile.mkdtemp(prefix=".agdemo-old-", dir=parent)
    try:
        _write_dataset(tmp, params)
        try:
            if _read_marker(out_dir) != params:
                if os.path.exists(out_dir):
                    os.rename(out_dir, os.path.join(trash, "old"))
                os.rename(tmp, out_dir)
        except OSError:
            if _read_marker(out_dir) != params:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)
    return out_dir


class AGDemo(ReIDDataset):
    """The demo set under ``<root>/AGDemo/`` (protocols A2G and G2A), generated on first use."""

    def __init__(self, root: str, seed: int = 0, num_train_ids: int = 60, num_test_ids: int = 40,
                 images_per_view: int = 8, height: int = 128, width: int = 64) -> None:
        data_dir = generate_agdemo(os.path.join(root, "AGDemo"), num_train_ids=int(num_train_ids),
                                   num_test_ids=int(num_test_ids), images_per_view=int(images_per_view),
                                   seed=int(seed), height=int(height), width=int(width))
        train, protocols = read_csv_layout(data_dir, "AGDemo")
        super().__init__("AGDemo", train, protocols, root=data_dir)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line: ``python -m agreid.data.datasets.synthetic --out DIR [--seed N] ...``."""
    parser = argparse.ArgumentParser(description="Generate the AGDemo synthetic aerial-ground re-id dataset.")
    parser.add_argument("--out", required=True, help="dataset directory to create, e.g. datasets/AGDemo")
    for option, default in (("seed", 0), ("num-train-ids", 60), ("num-test-ids", 40), ("images-per-view", 8),
                            ("height", 128), ("width", 64)):
        parser.add_argument(f"--{option}", type=int, default=default)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = generate_agdemo(args.out, args.num_train_ids, args.num_test_ids, args.images_per_view, args.seed,
                          args.height, args.width)
    train, protocols = read_csv_layout(out, "AGDemo")
    print(f"AGDemo ready in {out} ({time.perf_counter() - start:.1f}s): {len(train)} train images, "
          + ", ".join(f"{k} {len(p.query)}/{len(p.gallery)} query/gallery" for k, p in protocols.items()))


if __name__ == "__main__":
    main()
