"""Tests for k-reciprocal re-ranking (against the numpy reference in tools/) and average query expansion."""
import importlib.util
import os

import numpy as np
import pytest
import torch

from agreid.evaluation import average_query_expansion, re_ranking
from agreid.evaluation import rerank as rerank_module

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_reference():
    spec = importlib.util.spec_from_file_location("rerank_reference",
                                                  os.path.join(REPO, "tools", "rerank_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.re_ranking_numpy_reference


reference = _load_reference()


def euclidean_blocks(seed, num_q, num_g, dim=16, dtype=np.float32):
    rng = np.random.default_rng(seed)
    q, g = rng.standard_normal((num_q, dim)), rng.standard_normal((num_g, dim))

    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).astype(dtype)

    return dist(q, g), dist(q, q), dist(g, g)


@pytest.mark.parametrize("num_q,num_g,k1,k2,lam", [
    (30, 80, 20, 6, 0.3), (30, 80, 20, 1, 0.3), (30, 80, 5, 3, 0.0), (30, 80, 9, 6, 1.0),
    (17, 50, 3, 2, 0.5), (40, 25, 7, 1, 0.8), (30, 80, 3, 6, 0.3), (3, 5, 20, 6, 0.3)])
def test_matches_reference(num_q, num_g, k1, k2, lam):
    q_g, q_q, g_g = euclidean_blocks(num_q * 1000 + num_g + k1, num_q, num_g)
    expected = reference(q_g, q_q, g_g, k1, k2, lam)
    got = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (num_q, num_g)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_default_arguments_and_float64_inputs():
    q_g, q_q, g_g = euclidean_blocks(7, 30, 80, dtype=np.float64)
    assert re_ranking(q_g, q_q.astype(np.float32), g_g).dtype == np.float32
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g), reference(q_g, q_q, g_g, 20, 6, 0.3),
                               atol=1e-4, rtol=0)


def test_asymmetric_blocks_follow_the_original_transpose():
    rng = np.random.default_rng(3)
    q_g, q_q, g_g = (rng.random(shape).astype(np.float32) for shape in ((20, 45), (20, 20), (45, 45)))
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1=8, k2=4, lambda_value=0.3),
                               reference(q_g, q_q, g_g, 8, 4, 0.3), atol=1e-4, rtol=0)


def test_small_chunks_give_the_same_result(monkeypatch):
    q_g, q_q, g_g = euclidean_blocks(11, 30, 80)
    full = re_ranking(q_g, q_q, g_g, k1=10, k2=4)
    monkeypatch.setattr(rerank_module, "CHUNK_ELEMENTS", 97)
    monkeypatch.setattr(rerank_module, "JOIN_PAIRS", 50)
    monkeypatch.setattr(rerank_module, "TRANSPOSE_TILE", 7)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1=10, k2=4), full, atol=1e-6, rtol=0)


def test_torch_inputs_give_tensor_output_equal_to_numpy():
    q_g, q_q, g_g = euclidean_blocks(5, 25, 60)
    from_numpy = re_ranking(q_g, q_q, g_g, k1=12, k2=5, lambda_value=0.4)
    from_torch = re_ranking(torch.from_numpy(q_g), torch.from_numpy(q_q), torch.from_numpy(g_g),
                            k1=12, k2=5, lambda_value=0.4)
    assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.float32
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, atol=1e-6, rtol=0)


def test_shape_and_argument_checks():
    q_g, q_q, g_g = euclidean_blocks(1, 6, 9)
    with pytest.raises(ValueError):
        re_ranking(q_g, q_q, g_g[:, :8])
    with pytest.raises(ValueError):
        re_ranking(q_g.T, q_q, g_g)
    with pytest.raises(ValueError):
        re_ranking(q_g, q_q, g_g, k2=0)
    assert re_ranking(q_g[:0], q_q[:0, :0], g_g).shape == (0, 9)


def unit_features(seed, num, dim=12):
    feats = np.random.default_rng(seed).standard_normal((num, dim)).astype(np.float32)
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def test_aqe_k1_keeps_normalised_features():
    q, g = unit_features(0, 15), unit_features(1, 40)
    new_q, new_g = average_query_expansion(q, g, k=1, alpha=3.0, times=2)
    assert isinstance(new_q, np.ndarray) and new_q.shape == q.shape and new_g.shape == g.shape
    np.testing.assert_allclose(new_q, q, atol=1e-6)
    np.testing.assert_allclose(new_g, g, atol=1e-6)


def test_aqe_matches_brute_force_and_is_normalised():
    q, g = unit_features(2, 10) * 3.0, unit_features(3, 30)
    new_q, new_g = average_query_expansion(torch.from_numpy(q), torch.from_numpy(g), k=4, alpha=2.0)
    assert isinstance(new_q, torch.Tensor)
    feats = np.concatenate([q / 3.0, g])
    sims = feats @ feats.T
    expected = []
    for row in sims:
        top = np.argsort(-row)[:4]
        pooled = (np.maximum(row[top], 0) ** 2.0)[:, None] * feats[top]
        expected.append(pooled.sum(0) / np.linalg.norm(pooled.sum(0)))
    got = torch.cat([new_q, new_g]).numpy()
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-5)


def test_aqe_chunk_invariance():
    q, g = unit_features(4, 13), unit_features(5, 37)
    whole = average_query_expansion(q, g, k=5, times=2)
    chunked = average_query_expansion(q, g, k=5, times=2, chunk_size=3)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, atol=1e-6)
