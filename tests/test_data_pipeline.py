"""Tests of image decoding, transforms, samplers and loader builders: determinism, sharding and clear errors."""
from __future__ import annotations

import os
from typing import List

import cv2
import numpy as np
import pytest
import torch

from agreid.config.defaults import _C
from agreid.data.build import (build_test_loader, build_test_protocols, build_train_loader, build_train_set,
                               parse_options, resolve_root)
from agreid.data.common import ReIDImageSet, collate_batch
from agreid.data.image_io import CorruptImageError, read_image
from agreid.data.records import AERIAL, GROUND, DatasetError, ImageRecord, Protocol, ReIDDataset
from agreid.data.samplers import (IdentitySampler, InferenceSampler, RandomSampler, ViewBalancedIdentitySampler)
from agreid.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, ColorJitter, PadRandomCrop, RandomErasing,
                                    RandomHorizontalFlip, ToTensorNormalize, build_transforms)
from agreid.registries import DATASET_REGISTRY


def _cfg():
    cfg = _C.clone()
    cfg.INPUT.SIZE_TRAIN = [32, 16]
    cfg.INPUT.SIZE_TEST = [32, 16]
    cfg.INPUT.PADDING.SIZE = 2
    cfg.INPUT.CJ.ENABLED = True
    return cfg


def _image(rng: np.random.Generator, h: int = 40, w: int = 20) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _records(num_pids: int, sizes, views=None) -> List[ImageRecord]:
    out = []
    for pid in range(num_pids):
        for i in range(sizes[pid % len(sizes)]):
            view = views(pid, i) if views else GROUND
            out.append(ImageRecord(f"/nowhere/{pid:03d}_{i:02d}.jpg", pid, i % 3, view))
    return out


def _write_set(folder, num_pids: int = 6, per_pid: int = 3) -> List[ImageRecord]:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    recs = []
    for pid in range(num_pids):
        for i in range(per_pid):
            path = os.path.join(str(folder), f"{pid + 100}_{i}_{'aerial' if i % 2 else 'ground'}.jpg")
            cv2.imwrite(path, _image(rng, 36 + 2 * i, 18 + i))
            recs.append(ImageRecord(path, pid + 100, i, AERIAL if i % 2 else GROUND))
    return recs


# ---------------------------------------------------------------- image decoding

@pytest.mark.parametrize("decoder", ["opencv", "pil"])
def test_read_image_is_rgb_uint8(tmp_path, decoder):
    img = np.zeros((8, 4, 3), dtype=np.uint8)
    img[..., 0] = 255
    path = str(tmp_path / "red.png")
    cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = read_image(path, decoder)
    assert out.dtype == np.uint8 and out.shape == (8, 4, 3)
    assert (out[..., 0] == 255).all() and (out[..., 1:] == 0).all()


@pytest.mark.parametrize("decoder", ["opencv", "pil"])
def test_corrupt_or_missing_image_names_the_path(tmp_path, decoder):
    bad = tmp_path / "garbage.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg at all" * 10)
    with pytest.raises(CorruptImageError, match="garbage.jpg") as info:
        read_image(str(bad), decoder)
    assert info.value.path == str(bad) and isinstance(info.value, DatasetError)
    with pytest.raises(CorruptImageError, match="missing.jpg"):
        read_image(str(tmp_path / "missing.jpg"), decoder)


def test_corrupt_image_in_training_loader_names_the_path(tmp_path):
    recs = _write_set(tmp_path, num_pids=2, per_pid=2)
    with open(recs[1].path, "wb") as f:
        f.write(b"broken")
    ds = ReIDImageSet(recs, build_transforms(_cfg(), True))
    with pytest.raises(CorruptImageError, match=os.path.basename(recs[1].path)):
        ds[(1, 5)]
    loader = torch.utils.data.DataLoader(ds, batch_sampler=[[(1, 5)]], num_workers=1, collate_fn=collate_batch)
    assert _worker_error(loader) == recs[1].path


def _worker_error(loader) -> str:
    """The path named by the error a worker raised; holds no traceback, so the workers stop at once."""
    try:
        list(loader)
    except CorruptImageError as exc:
        assert "Caught CorruptImageError in DataLoader worker" in str(exc)
        return exc.path
    return ""


# ---------------------------------------------------------------- transforms

def test_train_transform_depends_only_on_seed():
    img = _image(np.random.default_rng(0))
    t = build_transforms(_cfg(), is_train=True)
    a = t(img, np.random.default_rng(11))
    np.random.seed(123)
    torch.manual_seed(123)
    b = t(img, np.random.default_rng(11))
    assert a.dtype == torch.float32 and a.shape == (3, 32, 16)
    assert torch.equal(a, b)
    assert any(not torch.equal(a, t(img, np.random.default_rng(s))) for s in range(12, 16))


def test_test_transform_is_deterministic_without_rng():
    img = _image(np.random.default_rng(1))
    t = build_transforms(_cfg(), is_train=False)
    assert torch.equal(t(img), t(img)) and t(img).shape == (3, 32, 16)


def test_random_transforms_refuse_to_run_without_rng():
    img = _image(np.random.default_rng(2))
    for t in (RandomHorizontalFlip(), PadRandomCrop(2), ColorJitter(1.0, 0.2)):
        with pytest.raises(ValueError, match="np.random.Generator"):
            t(img, None)


def test_normalisation_and_clip_statistics():
    mean_px = np.rint(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)
    img = np.tile(mean_px, (4, 2, 1))
    out = ToTensorNormalize()(img)
    assert out.shape == (3, 4, 2) and out.abs().max() < 0.01
    white = ToTensorNormalize()(np.full((1, 1, 3), 255, np.uint8))
    expected = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(white[:, 0, 0].numpy(), expected, atol=1e-5)
    cfg = _cfg()
    cfg.INPUT.NORM = "clip"
    assert "0.48145466" in repr(build_transforms(cfg, False))


def test_geometric_and_photometric_shapes():
    img = _image(np.random.default_rng(3))
    rng = np.random.default_rng(0)
    assert np.array_equal(RandomHorizontalFlip(1.0)(img, rng), img[:, ::-1])
    assert PadRandomCrop(4)(img, rng).shape == img.shape
    jittered = ColorJitter(1.0, 0.3, 0.3, 0.3, 0.1)(img, rng)
    assert jittered.dtype == np.uint8 and jittered.shape == img.shape and not np.array_equal(jittered, img)
    assert np.array_equal(ColorJitter(0.0, 0.3)(img, rng), img)


@pytest.mark.parametrize("fill", ["mean", "random"])
def test_random_erasing_fills_one_rectangle_without_touching_input(fill):
    x = torch.ones(3, 32, 16)
    out = RandomErasing(1.0, fill=fill)(x, np.random.default_rng(4))
    assert torch.equal(x, torch.ones(3, 32, 16))
    changed = (out != 1).all(dim=0)
    rows, cols = changed.any(dim=1).nonzero(), changed.any(dim=0).nonzero()
    assert 0 < changed.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    if fill == "mean":
        assert (out[:, changed] == 0).all()


# ---------------------------------------------------------------- training samplers

def _pk_checks(recs, batch, p, k):
    pids = [recs[i].pid for i, _ in batch]
    assert len(batch) == p * k
    groups = [pids[j * k:(j + 1) * k] for j in range(p)]
    assert all(len(set(g)) == 1 for g in groups)
    assert len({g[0] for g in groups}) == p


@pytest.mark.parametrize("cls", [IdentitySampler, ViewBalancedIdentitySampler])
def test_identity_samplers_make_pk_batches_and_shard_whole_identities(cls):
    recs = _records(13, [1, 2, 5, 9], views=lambda pid, i: AERIAL if i % 3 == 0 else GROUND)
    single = cls(recs, 16, 4, world_size=1, rank=0, seed=3, iters_per_epoch=7)
    ranks = [cls(recs, 16, 4, world_size=2, rank=r, seed=3, iters_per_epoch=7) for r in range(2)]
    for s in [single] + ranks:
        s.set_epoch(2)
    full = list(single)
    per_rank = [list(s) for s in ranks]
    assert len(full) == len(single) == 7 and all(len(b) == 7 for b in per_rank)
    for g, r0, r1 in zip(full, *per_rank):
        _pk_checks(recs, g, 4, 4)
        _pk_checks(recs, r0, 2, 4)
        assert r0 + r1 == g
        assert not {recs[i].pid for i, _ in r0} & {recs[i].pid for i, _ in r1}


def test_samplers_are_pure_functions_of_seed_and_epoch():
    recs = _records(10, [3, 6])
    np.random.seed(0)
    a = IdentitySampler(recs, 8, 2, seed=5, iters_per_epoch=6)
    np.random.seed(99)
    b = IdentitySampler(recs, 8, 2, seed=5, iters_per_epoch=6)
    a.set_epoch(4)
    b.set_epoch(4)
    first = list(a)
    assert first == list(b)
    b.set_epoch(5)
    assert first != list(b)
    assert first != list(IdentitySampler(recs, 8, 2, seed=6, iters_per_epoch=6))
    b.set_epoch(4, start_iter=2)
    assert list(b) == first[2:] and len(b) == 4


def test_view_balanced_sampler_draws_both_views():
    recs = _records(8, [3, 7], views=lambda pid, i: AERIAL if i == 0 else GROUND)
    sampler = ViewBalancedIdentitySampler(recs, 16, 4, seed=1, iters_per_epoch=10)
    for batch in sampler:
        for j in range(4):
            views = [recs[i].view for i, _ in batch[j * 4:(j + 1) * 4]]
            assert views.count(AERIAL) == 2 and views.count(GROUND) == 2
    odd = ViewBalancedIdentitySampler(recs, 6, 3, seed=1, iters_per_epoch=10)
    counts = {v.count(AERIAL) for b in odd for v in ([recs[i].view for i, _ in b[:3]], [recs[i].view for i, _ in b[3:]])}
    assert counts == {1, 2}


def test_random_sampler_shards_global_batches():
    recs = _records(5, [3])
    single = RandomSampler(recs, 6, seed=2, iters_per_epoch=5)
    ranks = [RandomSampler(recs, 6, world_size=2, rank=r, seed=2, iters_per_epoch=5) for r in range(2)]
    for g, r0, r1 in zip(single, *ranks):
        assert len(r0) == 3 and r0 + r1 == g
    epoch_items = [i for b in single for i, _ in b]
    assert sorted(epoch_items[:15]) == list(range(15))


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=16, num_instances=16, world_size=2), "P"),
    (dict(batch_size=15, num_instances=4, world_size=2), "multiple of the number of processes"),
    (dict(batch_size=12, num_instances=8, world_size=1), "not a multiple of K"),
    (dict(batch_size=64, num_instances=4, world_size=1), "only 10"),
    (dict(batch_size=8, num_instances=4, world_size=1, iters_per_epoch=0), "iters_per_epoch"),
    (dict(batch_size=8, num_instances=0, world_size=1), "NUM_INSTANCE"),
])
def test_sampler_validation_errors(kwargs, message):
    kwargs.setdefault("iters_per_epoch", 3)
    with pytest.raises(ValueError, match=message):
        IdentitySampler(_records(10, [4]), rank=0, seed=0, **kwargs)


def test_empty_records_are_rejected():
    with pytest.raises(ValueError, match="empty"):
        RandomSampler([], 8)


def test_from_config_reads_solver_and_dataloader_keys():
    cfg = _cfg()
    cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCE, cfg.SEED = 8, 2, 4
    sampler = ViewBalancedIdentitySampler.from_config(cfg, _records(10, [4]), world_size=2, rank=1)
    assert (sampler.per_rank, sampler.num_instances, sampler.seed, len(sampler)) == (4, 2, 4, 5)


# ---------------------------------------------------------------- evaluation sharding

@pytest.mark.parametrize("n, world", [(10, 3), (2, 3), (7, 1), (0, 2)])
def test_inference_sampler_covers_all_indices_in_order(n, world):
    shards = [[i for b in InferenceSampler(n, 2, world, r) for i in b] for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    assert all(len(b) <= 2 for r in range(world) for b in InferenceSampler(n, 2, world, r))


# ---------------------------------------------------------------- dataset and loaders

def test_items_and_collate(tmp_path):
    recs = _write_set(tmp_path, num_pids=2, per_pid=2)
    ds = ReIDImageSet(recs, build_transforms(_cfg(), False))
    batch = collate_batch([ds[0], ds[(3, 9)]])
    assert batch["images"].shape == (2, 3, 32, 16)
    assert batch["targets"].tolist() == [100, 101] and batch["targets"].dtype == torch.long
    assert batch["views"].tolist() == [1, 0] and batch["modalities"].tolist() == [0, 0]
    assert batch["indices"].tolist() == [0, 3] and batch["paths"] == [recs[0].path, recs[3].path]


def test_loader_output_is_independent_of_worker_count(tmp_path):
    recs = _write_set(tmp_path)
    ds = ReIDImageSet(recs, build_transforms(_cfg(), True))
    sampler = ViewBalancedIdentitySampler(recs, 4, 2, seed=0, iters_per_epoch=4)
    sampler.set_epoch(1)
    runs = []
    for workers in (0, 2):
        torch.manual_seed(workers)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=workers,
                                             collate_fn=collate_batch)
        runs.append(list(loader))
    assert len(runs[0]) == 4
    for a, b in zip(*runs):
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["indices"], b["indices"])


def _tiny_dataset(name):
    def make(root, **options):
        folder = os.path.join(root, name)
        recs = []
        for fname in sorted(os.listdir(folder)):
            pid, cam, view = fname[:-4].split("_")
            recs.append(ImageRecord(os.path.join(folder, fname), int(pid), int(cam), view))
        query = tuple(r for r in recs if r.camid == 0)
        gallery = tuple(r for r in recs if r.camid != 0)
        protos = {"b": Protocol(query, gallery), "a": Protocol(query[:1], gallery)}
        return ReIDDataset(name, recs, protos, root)
    return make


DATASET_REGISTRY.register(_tiny_dataset("TinyTestSetA"), "TinyTestSetA")
DATASET_REGISTRY.register(_tiny_dataset("TinyTestSetB"), "TinyTestSetB")


def test_build_train_set_offsets_pids(tmp_path):
    _write_set(tmp_path / "TinyTestSetA", num_pids=3)
    _write_set(tmp_path / "TinyTestSetB", num_pids=4)
    recs, num_classes, datasets = build_train_set(["TinyTestSetA", "TinyTestSetB"], str(tmp_path), [])
    assert num_classes == 7 and len(recs) == 21 and [d.name for d in datasets] == ["TinyTestSetA", "TinyTestSetB"]
    assert sorted({r.pid for r in recs}) == list(range(7))
    assert {r.pid for r in recs if "TinyTestSetB" in r.path} == {3, 4, 5, 6}


def test_build_train_loader_and_test_protocols(tmp_path, monkeypatch):
    _write_set(tmp_path / "TinyTestSetA", num_pids=5)
    cfg = _cfg()
    cfg.DATASETS.NAMES = ("TinyTestSetA",)
    cfg.DATASETS.TESTS = ("TinyTestSetA", "TinyTestSetA/b")
    cfg.DATALOADER.NUM_WORKERS, cfg.DATALOADER.NUM_INSTANCE = 0, 2
    cfg.SOLVER.IMS_PER_BATCH = 4
    monkeypatch.setenv("AGREID_DATASETS", str(tmp_path))
    loader, sampler, num_classes = build_train_loader(cfg)
    sampler.set_epoch(0)
    batches = list(loader)
    assert num_classes == 5 and len(batches) == len(sampler) == 3
    assert batches[0]["images"].shape == (4, 3, 32, 16)
    names = [n for n, _ in build_test_protocols(cfg)]
    assert names == ["TinyTestSetA/a", "TinyTestSetA/b"]
    cfg.DATASETS.TESTS = ("TinyTestSetA/zz",)
    with pytest.raises(ValueError, match="Available: a, b"):
        build_test_protocols(cfg)


def test_root_and_options_parsing(monkeypatch):
    monkeypatch.delenv("AGREID_DATASETS", raising=False)
    assert resolve_root("datasets") == "datasets"
    monkeypatch.setenv("AGREID_DATASETS", "/data")
    assert resolve_root("datasets") == "/data" and resolve_root("/mine") == "/mine"
    assert parse_options(["trial=3", "mode=all", "flag=True", "ratio=0.5"]) == \
        {"trial": 3, "mode": "all", "flag": True, "ratio": 0.5}
    with pytest.raises(ValueError, match="key=value"):
        parse_options(["oops"])
    scoped = ["RegDB:trial=3", "seed=1", "CP2108:time_mode=cross", "AGDemo:path=a:b"]
    assert parse_options(scoped, "RegDB") == {"trial": 3, "seed": 1}
    assert parse_options(scoped, "CP2108") == {"seed": 1, "time_mode": "cross"}
    assert parse_options(scoped, "AGDemo") == {"seed": 1, "path": "a:b"}


def test_test_loader_shards_in_order(tmp_path):
    recs = _write_set(tmp_path, num_pids=3, per_pid=3)
    t = build_transforms(_cfg(), False)
    seen = [p for r in range(2) for b in build_test_loader(recs, t, 4, 0, 2, r) for p in b["paths"]]
    assert seen == [r.path for r in recs]


def test_build_dataset_names_unknown_options():
    from agreid.data import DatasetError, build_dataset

    with pytest.raises(DatasetError, match=r"AGDemo does not take the option\(s\) num_ids; it takes: seed"):
        build_dataset("AGDemo", "/nonexistent", num_ids=3)


def test_bicubic_training_resize_and_random_erasing_fill_from_config():
    """INPUT.INTERPOLATION_TRAIN and INPUT.REA.FILL reach the training transforms; a bad value is a ConfigError."""
    from agreid.config import ConfigError, get_cfg
    from agreid.data.opencv import cv2
    from agreid.data.transforms import build_transforms

    cfg = get_cfg()
    cfg.merge_from_list(["INPUT.INTERPOLATION_TRAIN", "bicubic", "INPUT.REA.FILL", "random"])
    steps = build_transforms(cfg, is_train=True).transforms
    assert steps[0].interpolation == cv2.INTER_CUBIC and steps[-1].fill == "random"
    assert build_transforms(cfg, is_train=False).transforms[0].interpolation == cv2.INTER_LINEAR
    cfg.merge_from_list(["INPUT.INTERPOLATION_TRAIN", "nearest"])
    with pytest.raises(ConfigError, match="INTERPOLATION_TRAIN"):
        build_transforms(cfg, is_train=True)
