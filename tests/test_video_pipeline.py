"""Clip sampling, the tracklet Dataset and tracklet feature extraction of agreid.data.video."""
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from torch import nn

from agreid.data.common import ReIDImageSet, collate_batch
from agreid.data.opencv import cv2
from agreid.data.records import ImageRecord, TrackletRecord
from agreid.data.transforms.compose import Compose
from agreid.data.transforms.geometric import RandomHorizontalFlip
from agreid.data.video import (TrackletSet, chunk_table, dense_clips, extract_tracklet_features, sample_clip,
                               sample_indices)


def idx(n: int, s: int, method: str, seed=None) -> List[int]:
    rng = np.random.default_rng(seed) if seed is not None else None
    return sample_indices(n, s, method, rng).tolist()


def test_reference_chunked_sampling() -> None:
    assert chunk_table(20, 8).tolist()[-2:] == [[18, 19, 19], [19, 19, 19]]
    assert idx(20, 8, "rrs_test") == [0, 3, 6, 9, 12, 15, 18, 19]
    assert idx(5, 8, "rrs_test") == [0, 1, 2, 3, 4, 4, 4, 4]
    assert idx(16, 8, "rrs_test") == list(range(0, 16, 2))
    table = chunk_table(30, 8)
    for seed in range(20):
        picked = idx(30, 8, "rrs_train", seed)
        assert all(p in row for p, row in zip(picked, table.tolist()))
        assert picked == sorted(picked)
    draws = {tuple(idx(30, 8, "rrs_train", seed)) for seed in range(20)}
    assert len(draws) > 10 and idx(30, 8, "rrs_train", 3) == idx(30, 8, "rrs_train", 3)
    assert idx(3, 8, "rrs_train", 0) == [0, 1, 2, 2, 2, 2, 2, 2]


def test_torchreid_style_sampling() -> None:
    assert idx(20, 8, "evenly") == [0, 2, 4, 6, 8, 10, 12, 14]
    assert idx(8, 8, "evenly") == list(range(8))
    assert idx(5, 8, "evenly") == [0, 1, 2, 3, 4, 4, 4, 4]
    long = idx(50, 8, "random", 1)
    assert len(set(long)) == 8 and long == sorted(long) and max(long) < 50
    short = idx(3, 8, "random", 1)
    assert len(short) == 8 and set(short) <= {0, 1, 2} and short == sorted(short)
    assert idx(11, 4, "all") == list(range(11))
    assert sample_clip(["a", "b", "c"], 4, "rrs_test") == ["a", "b", "c", "c"]
    assert dense_clips([str(i) for i in range(19)], 8)[-1] == ["16", "17", "18", "16", "17", "18", "16", "17"]
    assert [len(c) for c in dense_clips(list("abcdefgh"), 4)] == [4, 4]
    with pytest.raises(ValueError, match="explicit np.random.Generator"):
        idx(10, 4, "rrs_train")
    with pytest.raises(ValueError, match="explicit np.random.Generator"):
        idx(10, 4, "random")
    with pytest.raises(ValueError, match="Unknown clip sampling"):
        idx(10, 4, "dense")
    with pytest.raises(ValueError, match="no frames"):
        idx(0, 4, "evenly")


def write_frame(path: Path, value: int) -> str:
    """A 16×8 frame whose left half is ``value`` and right half 0, so a flip is visible."""
    img = np.zeros((16, 8, 3), dtype=np.uint8)
    img[:, :4] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return str(path)


def to_tensor(img: np.ndarray, rng=None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()


@pytest.fixture
def tracklets(tmp_path: Path) -> List[TrackletRecord]:
    out = []
    for t, (n, cam, view) in enumerate([(10, 4, "aerial"), (6, 1, "cctv"), (3, 2, "wearable")]):
        frames = tuple(write_frame(tmp_path / f"t{t}" / f"F{f:03d}.png", 10 * (t + 1) + f) for f in range(n))
        out.append(TrackletRecord(path=str(tmp_path / f"t{t}"), pid=7 + t, camid=cam, view=view, frames=frames))
    return out


def test_tracklet_set_items_and_shared_augmentation(tracklets: List[TrackletRecord]) -> None:
    flip = Compose([RandomHorizontalFlip(0.5), to_tensor])
    ds = TrackletSet(tracklets, flip, seq_len=4, method="rrs_train")
    item = ds[(0, 5)]
    image_item = ReIDImageSet([ImageRecord(tracklets[0].frames[0], 7, 4)], to_tensor)[0]
    assert set(item) == set(image_item)
    assert item["images"].shape == (4, 3, 16, 8)
    assert (item["targets"], item["camids"], item["views"], item["indices"], item["paths"]) == (
        7, 4, 0, 0, tracklets[0].path)
    assert torch.equal(ds[(0, 5)]["images"], item["images"])
    outcomes = set()
    for seed in range(12):
        clip = ds[(1, seed)]["images"]
        left_bright = (clip[:, 0, :, :4].mean(dim=(1, 2)) > 0).tolist()
        assert len(set(left_bright)) == 1, "every frame of a clip must share the flip"
        outcomes.add(left_bright[0])
    assert outcomes == {True, False}
    with pytest.raises(ValueError, match="explicit np.random.Generator"):
        ds[0]
    batch = collate_batch([ds[(i, 3)] for i in range(3)])
    assert batch["images"].shape == (3, 4, 3, 16, 8) and batch["targets"].tolist() == [7, 8, 9]


def test_tracklet_set_test_methods(tracklets: List[TrackletRecord]) -> None:
    ds = TrackletSet(tracklets, to_tensor, seq_len=4, method="rrs_test")
    values = ds[0]["images"][:, 0, 0, 0].tolist()
    assert values == [10 + f for f in chunk_table(10, 4)[:, 0].tolist()]
    whole = TrackletSet(tracklets, to_tensor, seq_len=4, method="all")[1]["images"]
    assert whole.shape == (6, 3, 16, 8)
    raw = TrackletSet(tracklets, None, seq_len=2, method="evenly")[2]["images"]
    assert isinstance(raw, np.ndarray) and raw.shape == (2, 16, 8, 3)
    with pytest.raises(ValueError, match="frames"):
        TrackletSet([ImageRecord("x.jpg", 1, 0)], to_tensor)
    with pytest.raises(ValueError, match="Unknown clip sampling"):
        TrackletSet(tracklets, to_tensor, method="dense")


class MeanPixel(nn.Module):
    """A frame-level 'model': the feature of an image is its mean top-left pixel value, twice."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.calls: List[torch.Size] = []

    def forward(self, batch):
        images = batch["images"]
        self.calls.append(images.shape)
        value = images[..., 0, 0, 0] * self.scale
        if images.dim() == 5:
            value = value.mean(dim=1)
        return torch.stack([value, 2 * value], dim=1)


def test_extract_tracklet_features(tracklets: List[TrackletRecord]) -> None:
    model = MeanPixel().train()
    feats = extract_tracklet_features(model, tracklets, to_tensor, 4, "rrs_test", batch_size=2)
    assert model.training and feats.shape == (3, 2)
    expected = [np.mean([10 * (t + 1) + f for f in chunk_table(n, 4)[:, 0]]) for t, n in enumerate((10, 6, 3))]
    np.testing.assert_allclose(feats[:, 0].numpy(), expected)
    assert model.calls[0] == (8, 3, 16, 8) and len(model.calls) == 2

    feats_all = extract_tracklet_features(MeanPixel(), tracklets, to_tensor, 4, "all", batch_size=1)
    clips_t0 = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]]
    np.testing.assert_allclose(feats_all[0, 0].item(), np.mean([np.mean([10 + f for f in c]) for c in clips_t0]))
    clips_t2 = [[0, 1, 2, 0]]
    np.testing.assert_allclose(feats_all[2, 0].item(), np.mean([30 + f for f in clips_t2[0]]))
    batched = extract_tracklet_features(MeanPixel(), tracklets, to_tensor, 4, "all", batch_size=3)
    torch.testing.assert_close(batched, feats_all)

    clip_model = MeanPixel()
    clip_level = extract_tracklet_features(clip_model, tracklets, to_tensor, 4, "rrs_test", batch_size=3,
                                           frame_level=False)
    assert clip_model.calls == [(3, 4, 3, 16, 8)]
    torch.testing.assert_close(clip_level, feats)

    r1 = extract_tracklet_features(MeanPixel(), tracklets, to_tensor, 4, "random", 2, seed=1)
    r2 = extract_tracklet_features(MeanPixel(), tracklets, to_tensor, 4, "random", 2, seed=1)
    torch.testing.assert_close(r1, r2)
    assert extract_tracklet_features(MeanPixel(), [], to_tensor, 4, "evenly", 2).shape == (0, 0)
