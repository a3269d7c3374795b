#!/usr/bin/env python
"""Rebuild G2APS-ReID from the G2APS person-search release, following the dataset authors' pipeline.

G2APS-ReID cannot be redistributed; its authors publish scripts that crop every annotated person
from G2APS, split identities with fixed lists, pick queries by k-means and write two protocol
lists. This script performs those steps in one run:

1. read ``annotation/Images.mat`` (``Img``: frame name, count, boxes x, y, w, h; boxes with a
   non-positive side dropped) and ``annotation/Person.mat`` (``Person``: for person ``i`` its
   appearances frame, box; the pid is ``i + 1``); a box takes the pid of the first exactly equal
   (integer-truncated) annotated box in its frame, all other boxes get distractor pid 5555;
2. crop each box from ``Image/SSM/<frame>`` (frame ``<cam>_<height>_<frame>``: cam ``S*`` is the
   ground camera, code 3; ``D*`` the drone, code 0; ``cam[1]`` the sequence digit) to
   ``<pid:04d>_c<code>v<seq>_<frame:06d>.jpg``; a repeated name overwrites the earlier crop, as
   in the authors' script (this is how several unlabeled people of one frame collapse to one);
3. put identities of the train list in ``bounding_box_train/<pid>/``, those of the test list in
   ``bounding_box_test_c3/<pid>/`` or, for drone crops, ``bounding_box_test_c0/<pid>/`` (train wins
   if an id is in both lists), pid 5555 flat in ``bounding_box_gallery/``; other ids are left out;
4. for each test id and camera, copy all crops when there are fewer than 4, otherwise resize each
   to 64x64 (bicubic), take its 64x64-bin histogram of channels 0 and 1 (BGR) divided by 255,
   cluster with KMeans(4) and copy one ``random.choice`` per cluster into ``query_c0/<pid>/`` or
   ``query_c3/<pid>/`` (Python ``random`` seeded with 0, drone ids first, then ground ids);
5. write ``exp3_A2G+.txt`` (query_c0, bounding_box_test_c3, distractors not from camera 0) and
   ``exp4_G2A+.txt`` (query_c3, bounding_box_test_c0, distractors not from camera 3).

Where the authors' scripts depend on chance beyond their seed, this script fixes it: folders are
visited in sorted (numeric pid) order instead of ``os.listdir`` order, KMeans gets
``random_state=--kmeans-seed`` (the authors left it unseeded), and an empty cluster is skipped
(the authors' script would stop there). The identity lists ``train_id.txt`` and ``test_id.txt``
come with the authors' G2APS-ReID repository and must be passed in. Truncated source frames are
read with Pillow's truncated-image tolerance, as in the authors' crop script.

Example::

    python scripts/build_g2aps_reid.py --g2aps /data/G2APS --train-ids train_id.txt \\
        --test-ids test_id.txt --out /data
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

DISTRACTOR_PID = 5555
CAMERA_CODES = {"S": 3, "D": 0}
QUERY_CLUSTERS = 4
FOLDER = "G2APS-ReID"
_CROP_NAME = re.compile(r"([-\d]+)_c(\d)v(\d)")

SOURCE_LAYOUT = """\
  <g2aps>/Image/SSM/<cam>_<height>_<frame>.jpg     cam 'S<seq>...' ground, 'D<seq>...' drone
  <g2aps>/annotation/Images.mat                    variable Img: (frame name, count, boxes x y w h)
  <g2aps>/annotation/Person.mat                    variable Person: (id name, count, appearances
                                                   (frame name, box x y w h, hard flag))"""


class BuildError(RuntimeError):
    """The G2APS source or an identity list is missing or malformed."""


def _text(value) -> str:
    return str(np.asarray(value).ravel()[0])


def _box_rows(value) -> np.ndarray:
    """An (N, 4) float array from a MATLAB box field: a struct array of 1x4 boxes or a plain Nx4 matrix."""
    arr = np.asarray(value)
    if arr.dtype.names or arr.dtype == object:
        rows = [np.asarray(item[0] if isinstance(item, np.void) else item, dtype=float).ravel()[:4]
                for item in arr.ravel()]
        return np.asarray(rows, dtype=float).reshape(-1, 4)
    return arr.astype(float).reshape(-1, 4)


def _load_mat(path: str, variable: str) -> np.ndarray:
    from scipy.io import loadmat

    if not os.path.isfile(path):
        raise BuildError(f"'{path}' was not found.\nExpected G2APS layout:\n{SOURCE_LAYOUT}")
    try:
        data = loadmat(path)
    except (NotImplementedError, ValueError, OSError) as err:
        raise BuildError(f"'{path}' cannot be read as a MATLAB v5 file ({err}).") from None
    if variable not in data:
        raise BuildError(f"'{path}' has no variable '{variable}'.\nExpected G2APS layout:\n{SOURCE_LAYOUT}")
    return np.atleast_1d(data[variable].squeeze())


def load_annotations(g2aps_dir: str) -> Tuple[List[str], Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """Frame names in annotation order, their valid boxes (int32 x, y, w, h) and the pid of every box."""
    images = _load_mat(os.path.join(g2aps_dir, "annotation", "Images.mat"), "Img")
    names: List[str] = []
    boxes: Dict[str, np.ndarray] = {}
    pids: Dict[str, np.ndarray] = {}
    for entry in images:
        name = _text(entry[0])
        rows = _box_rows(entry[2])
        rows = rows[(rows[:, 2] > 0) & (rows[:, 3] > 0)]
        if rows.size == 0:
            raise BuildError(f"Images.mat: frame '{name}' has no box with positive width and height.")
        names.append(name)
        boxes[name] = rows.astype(np.int32)
        pids[name] = np.full(len(rows), DISTRACTOR_PID, dtype=np.int64)
    persons = _load_mat(os.path.join(g2aps_dir, "annotation", "Person.mat"), "Person")
    for index, person in enumerate(persons):
        for scene in np.asarray(person[2]).ravel():
            name = _text(scene[0])
            if name not in boxes:
                raise BuildError(f"Person.mat: person {index + 1} appears in frame '{name}', "
                                 f"which Images.mat does not list.")
            box = np.asarray(scene[1], dtype=float).ravel()[:4].astype(np.int32)
            hits = np.flatnonzero((boxes[name] == box).all(axis=1))
            if hits.size:
                pids[name][hits[0]] = index + 1
    return names, boxes, pids


def parse_frame_name(name: str) -> Tuple[int, int, int]:
    """(camera code, sequence digit, frame number) of ``<cam>_<height>_<frame>.jpg``."""
    parts = os.path.splitext(name)[0].split("_")
    if len(parts) != 3 or len(parts[0]) < 2 or parts[0][0] not in CAMERA_CODES \
            or not parts[0][1].isdigit() or not parts[2].isdigit():
        raise BuildError(f"frame name '{name}' is not '<S|D><seq>..._<height>_<frame>.jpg'.")
    return CAMERA_CODES[parts[0][0]], int(parts[0][1]), int(parts[2])


def crop_destination(pid: int, camera: int, train_ids: Set[int], test_ids: Set[int]) -> Optional[str]:
    """The folder (relative to ``G2APS-ReID/``) a crop of ``pid`` goes to, or None if it is left out."""
    if pid == DISTRACTOR_PID:
        return "bounding_box_gallery"
    if pid in train_ids:
        return f"bounding_box_train/{pid}"
    if pid in test_ids:
        return f"bounding_box_test_c{0 if camera == 0 else 3}/{pid}"
    return None


def crop_persons(g2aps_dir: str, out_dir: str, train_ids: Set[int], test_ids: Set[int],
                 log_every: int = 500) -> int:
    """Crop every box into its split folder; returns the number of crops written."""
    from PIL import Image, ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = True
    names, boxes, pids = load_annotations(g2aps_dir)
    frame_dir = os.path.join(g2aps_dir, "Image", "SSM")
    written = 0
    for number, name in enumerate(names, start=1):
        camera, sequence, frame = parse_frame_name(name)
        frame_path = os.path.join(frame_dir, name)
        if not os.path.isfile(frame_path):
            raise BuildError(f"frame '{frame_path}' listed in Images.mat was not found.\n"
                             f"Expected G2APS layout:\n{SOURCE_LAYOUT}")
        with Image.open(frame_path) as image:
            image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
            for (x, y, w, h), pid in zip(boxes[name].tolist(), pids[name].tolist()):
                folder = crop_destination(pid, camera, train_ids, test_ids)
                if folder is None:
                    continue
                target = os.path.join(out_dir, *folder.split("/"))
                os.makedirs(target, exist_ok=True)
                if folder.startswith("bounding_box_test_"):
                    for cam_folder in ("bounding_box_test_c0", "bounding_box_test_c3"):
                        os.makedirs(os.path.join(out_dir, cam_folder, str(pid)), exist_ok=True)
                crop_name = f"{pid:04d}_c{camera:1d}v{sequence:1d}_{frame:06d}.jpg"
                image.crop((x, y, x + w, y + h)).save(os.path.join(target, crop_name))
                written += 1
        if log_every and number % log_every == 0:
            print(f"cropped {number}/{len(names)} frames", flush=True)
    return written


def histogram_features(paths: Sequence[str]) -> np.ndarray:
    """One row per image: its 64x64-bin histogram of channels 0 and 1 after a 64x64 bicubic resize, / 255."""
    import cv2

    rows = []
    for path in paths:
        image = cv2.imread(path)
        if image is None:
            raise BuildError(f"cannot read crop '{path}'.")
        small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_CUBIC)
        hist = cv2.calcHist([small], [0, 1], None, [64, 64], [0.0, 255.0, 0.0, 255.0])
        rows.append((hist / 255).flatten())
    return np.asarray(rows)


def _pid_folders(path: str) -> List[str]:
    if not os.path.isdir(path):
        return []
    names = [n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n))]
    return sorted(names, key=lambda n: (int(n) if n.lstrip("-").isdigit() else float("inf"), n))


def select_queries(out_dir: str, seed: int = 0, kmeans_seed: int = 0, clusters: int = QUERY_CLUSTERS) -> int:
    """Copy ``clusters`` k-means-chosen crops per test id and camera into ``query_c0`` / ``query_c3``."""
    from sklearn.cluster import KMeans

    rng = random.Random(seed)
    copied = 0
    for camera in (0, 3):
        test_dir = os.path.join(out_dir, f"bounding_box_test_c{camera}")
        for pid in _pid_folders(test_dir):
            source = os.path.join(test_dir, pid)
            target = os.path.join(out_dir, f"query_c{camera}", pid)
            os.makedirs(target, exist_ok=True)
            files = sorted(f for f in os.listdir(source) if os.path.isfile(os.path.join(source, f)))
            if len(files) < clusters:
                chosen = files
            else:
                features = histogram_features([os.path.join(source, f) for f in files])
                model = KMeans(n_clusters=clusters, n_init="auto", random_state=kmeans_seed).fit(features)
                labels = model.predict(features)
                groups = [[f for f, label in zip(files, labels) if label == k] for k in range(clusters)]
                chosen = [rng.choice(group) for group in groups if group]
            for name in chosen:
                shutil.copy(os.path.join(source, name), target)
            copied += len(chosen)
    return copied


def _folder_lines(out_dir: str, folder: str) -> Iterable[str]:
    root = os.path.join(out_dir, folder)
    for pid in _pid_folders(root):
        for name in sorted(os.listdir(os.path.join(root, pid))):
            yield f"{folder}/{pid}/{name}"


def write_protocol_lists(out_dir: str) -> Dict[str, int]:
    """Write ``exp3_A2G+.txt`` and ``exp4_G2A+.txt``; returns the number of lines of each."""
    gallery_dir = os.path.join(out_dir, "bounding_box_gallery")
    distractors = sorted(os.listdir(gallery_dir)) if os.path.isdir(gallery_dir) else []
    counts = {}
    for list_name, query_cam, gallery_cam in (("exp3_A2G+.txt", 0, 3), ("exp4_G2A+.txt", 3, 0)):
        lines = list(_folder_lines(out_dir, f"query_c{query_cam}"))
        lines += _folder_lines(out_dir, f"bounding_box_test_c{gallery_cam}")
        for name in distractors:
            match = _CROP_NAME.search(name)
            if match and int(match.group(2)) != query_cam:
                lines.append(f"bounding_box_gallery/{name}")
        with open(os.path.join(out_dir, list_name), "w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(line + "\n" for line in lines)
        counts[list_name] = len(lines)
    return counts


def read_id_list(path: str) -> Set[int]:
    """The integer ids of an identity list file (one per line, blank lines ignored)."""
    if not os.path.isfile(path):
        raise BuildError(f"identity list '{path}' was not found (train_id.txt / test_id.txt from the "
                         f"G2APS-ReID repository).")
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        try:
            return {int(line) for line in handle if line.strip()}
        except ValueError:
            raise BuildError(f"identity list '{path}' must hold one integer id per line.") from None


def build(g2aps_dir: str, train_ids: Set[int], test_ids: Set[int], out_root: str, seed: int = 0,
          kmeans_seed: int = 0, overwrite: bool = False) -> str:
    """Run the whole pipeline into ``<out_root>/G2APS-ReID``; returns that folder."""
    out_dir = os.path.join(out_root, FOLDER)
    if os.path.exists(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise BuildError(f"'{out_dir}' already exists and is not empty; pass --overwrite to rebuild it.")
        shutil.rmtree(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    crops = crop_persons(g2aps_dir, out_dir, train_ids, test_ids)
    queries = select_queries(out_dir, seed=seed, kmeans_seed=kmeans_seed)
    counts = write_protocol_lists(out_dir)
    print(f"G2APS-ReID written to {out_dir}: {crops} crops, {queries} queries, "
          + ", ".join(f"{k}: {v} lines" for k, v in counts.items()), flush=True)
    return out_dir


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--g2aps", required=True, help="G2APS folder holding Image/SSM and annotation/")
    parser.add_argument("--train-ids", required=True, help="train_id.txt of the G2APS-ReID repository")
    parser.add_argument("--test-ids", required=True, help="test_id.txt of the G2APS-ReID repository")
    parser.add_argument("--out", required=True, help="data root; the dataset goes to <out>/G2APS-ReID")
    parser.add_argument("--seed", type=int, default=0, help="per-cluster query choice seed (authors: 0)")
    parser.add_argument("--kmeans-seed", type=int, default=0, help="KMeans random_state")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing <out>/G2APS-ReID")
    args = parser.parse_args(argv)
    try:
        build(args.g2aps, read_id_list(args.train_ids), read_id_list(args.test_ids), args.out,
              seed=args.seed, kmeans_seed=args.kmeans_seed, overwrite=args.overwrite)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
