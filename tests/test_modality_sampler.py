"""ModalityBalancedIdentitySampler: the AGW reference's composition, epoch length, DDP slicing and determinism."""
from __future__ import annotations

from collections import Counter
from typing import List, Sequence, Tuple

import numpy as np
import pytest

from agreid.config import ConfigError
from agreid.config.defaults import _C
from agreid.data.records import INFRARED, VISIBLE, ImageRecord
from agreid.data.samplers import ModalityBalancedIdentitySampler
from agreid.data.samplers.modality_balanced import reference_epoch_length
from agreid.registries import SAMPLER_REGISTRY

# pid -> (visible images, infrared images)
COUNTS = {0: (5, 2), 1: (1, 4), 2: (8, 8), 3: (3, 3), 4: (2, 7), 5: (6, 1), 6: (4, 4), 7: (1, 1)}


def vi_records(counts=COUNTS) -> List[ImageRecord]:
    out = []
    for pid, (n_vis, n_ir) in counts.items():
        out += [ImageRecord(f"/vi/{pid}/v{i}.jpg", pid, 1 + i % 2, modality=VISIBLE) for i in range(n_vis)]
        out += [ImageRecord(f"/vi/{pid}/t{i}.jpg", pid, 3, modality=INFRARED) for i in range(n_ir)]
    return out


def check_groups(records: Sequence[ImageRecord], batch: List[Tuple[int, int]], p: int, k: int) -> List[int]:
    """Assert ``batch`` is p runs of (k visible, k infrared) of one identity each; return the identities."""
    assert len(batch) == p * 2 * k
    assert all(isinstance(i, int) and isinstance(s, int) for i, s in batch)
    pids = []
    for g in range(p):
        group = [records[i] for i, _ in batch[g * 2 * k:(g + 1) * 2 * k]]
        assert len({r.pid for r in group}) == 1
        assert [r.modality for r in group] == [VISIBLE] * k + [INFRARED] * k
        pids.append(group[0].pid)
    assert len(set(pids)) == p
    return pids


def test_registered() -> None:
    assert SAMPLER_REGISTRY.get("ModalityBalancedIdentitySampler") is ModalityBalancedIdentitySampler


def test_batches_hold_k_visible_then_k_infrared_per_identity() -> None:
    recs = vi_records()
    sampler = ModalityBalancedIdentitySampler(recs, 16, 2, seed=4, iters_per_epoch=12)
    sampler.set_epoch(1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 12
    drawn = set()
    for batch in batches:
        drawn.update(check_groups(recs, batch, 4, 2))
    assert drawn == set(COUNTS)


def test_identities_uniform_and_images_with_replacement() -> None:
    """As the reference: identities uniformly per batch (not by image count), K images drawn with replacement."""
    recs = vi_records()
    sampler = ModalityBalancedIdentitySampler(recs, 8, 4, seed=0, iters_per_epoch=800)  # P = 1, K = 4
    picks = Counter()
    repeated = False
    for batch in sampler:
        pid = check_groups(recs, batch, 1, 4)[0]
        picks[pid] += 1
        vis = [i for i, _ in batch[:4]]
        repeated |= len(set(vis)) < 4 and COUNTS[pid][0] >= 4
    assert set(picks) == set(COUNTS)
    assert max(picks.values()) < 1.5 * min(picks.values())  # pid 2 (16 images) is not favoured over pid 7 (2)
    assert repeated  # replacement even where an identity has K images


def test_epoch_length_is_the_references() -> None:
    recs = vi_records()
    n_vis, n_ir = sum(v for v, _ in COUNTS.values()), sum(t for _, t in COUNTS.values())
    assert reference_epoch_length(recs, 8) == max(n_vis, n_ir) // 4 + 1 == 8
    cfg = _C.clone()
    cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCE, cfg.SEED, cfg.SOLVER.ITERS_PER_EPOCH = 8, 2, 3, 0
    assert len(ModalityBalancedIdentitySampler.from_config(cfg, recs, world_size=1, rank=0)) == 8
    cfg.SOLVER.ITERS_PER_EPOCH = 5
    assert len(ModalityBalancedIdentitySampler.from_config(cfg, recs, world_size=1, rank=0)) == 5


def test_ranks_take_contiguous_whole_identities() -> None:
    recs = vi_records()
    single = ModalityBalancedIdentitySampler(recs, 24, 3, world_size=1, rank=0, seed=2, iters_per_epoch=6)
    ranks = [ModalityBalancedIdentitySampler(recs, 24, 3, world_size=2, rank=r, seed=2, iters_per_epoch=6)
             for r in range(2)]
    for s in [single] + ranks:
        s.set_epoch(3)
    for g, r0, r1 in zip(list(single), *[list(s) for s in ranks]):
        check_groups(recs, g, 4, 3)
        assert r0 + r1 == g  # the same global batch whatever the process count
        assert not set(check_groups(recs, r0, 2, 3)) & set(check_groups(recs, r1, 2, 3))


def test_order_is_a_pure_function_of_seed_and_epoch() -> None:
    recs = vi_records()
    np.random.seed(0)
    a = ModalityBalancedIdentitySampler(recs, 8, 2, seed=5, iters_per_epoch=5)
    np.random.seed(1)
    b = ModalityBalancedIdentitySampler(recs, 8, 2, seed=5, iters_per_epoch=5)
    a.set_epoch(2)
    b.set_epoch(2)
    first = list(a)
    assert first == list(b)
    b.set_epoch(3)
    assert list(b) != first
    assert list(ModalityBalancedIdentitySampler(recs, 8, 2, seed=6, iters_per_epoch=5)) != first
    b.set_epoch(2, start_iter=3)
    assert list(b) == first[3:] and len(b) == 2


def test_from_config_reads_k_per_modality() -> None:
    cfg = _C.clone()
    cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCE, cfg.SEED = 16, 2, 7
    cfg.SOLVER.ITERS_PER_EPOCH = 0
    sampler = ModalityBalancedIdentitySampler.from_config(cfg, vi_records(), world_size=2, rank=1)
    assert (sampler.per_rank, sampler.per_modality, sampler.num_pids_per_rank, sampler.seed) == (8, 2, 2, 7)
    assert len(sampler) == reference_epoch_length(vi_records(), 16)
    for batch in sampler:
        check_groups(sampler.records, batch, 2, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=12, num_instances=4), "multiple of 2K = 8"),
    (dict(batch_size=4, num_instances=4), "multiple of 2K = 8"),
    (dict(batch_size=16, num_instances=4, world_size=4), "per-process batch 4"),
    (dict(batch_size=8, num_instances=0), "NUM_INSTANCE"),
    (dict(batch_size=15, num_instances=2, world_size=2), "multiple of the number of processes"),
    (dict(batch_size=36, num_instances=2), "both visible and infrared"),
])
def test_validation_errors(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        ModalityBalancedIdentitySampler(vi_records(), seed=0, iters_per_epoch=2, **kwargs)


def test_identities_missing_a_modality_are_named() -> None:
    recs = vi_records({**COUNTS, 9: (5, 0), 11: (0, 2)})
    with pytest.raises(ConfigError, match=r"2 of 10 lack one modality \(class indices 9, 11\)"):
        ModalityBalancedIdentitySampler(recs, 8, 2, seed=0, iters_per_epoch=2)
    with pytest.raises(ConfigError, match="lack one modality"):
        ModalityBalancedIdentitySampler(vi_records({0: (3, 0), 1: (4, 0)}), 4, 2, seed=0, iters_per_epoch=2)
