"""Straightforward numpy k-reciprocal re-ranking (Zhong et al., CVPR 2017), step for step like the original.

Dense (Q+G)² float32 arrays, a full argsort and Python loops over rows: the ground truth that the tests
and the re-ranking benchmark compare ``agreid.evaluation.re_ranking`` against.
"""
from __future__ import annotations

import numpy as np


def re_ranking_numpy_reference(q_g_dist: np.ndarray, q_q_dist: np.ndarray, g_g_dist: np.ndarray,
                               k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    """Return the re-ranked Q×G float32 distance from Q×G, Q×Q and G×G distances (numpy arrays)."""
    q_g_dist, q_q_dist, g_g_dist = (np.asarray(d) for d in (q_g_dist, q_q_dist, g_g_dist))
    original_dist = np.concatenate([np.concatenate([q_q_dist, q_g_dist], axis=1),
                                    np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0)
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    weights_v = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist).astype(np.int32)

    query_num = q_g_dist.shape[0]
    all_num = original_dist.shape[0]
    half = int(np.around(k1 / 2.0))

    for i in range(all_num):
        forward = initial_rank[i, :k1 + 1]
        backward = initial_rank[forward, :k1 + 1]
        reciprocal = forward[np.where(backward == i)[0]]
        expansion = reciprocal
        for candidate in reciprocal:
            cand_forward = initial_rank[candidate, :half + 1]
            cand_backward = initial_rank[cand_forward, :half + 1]
            cand_reciprocal = cand_forward[np.where(cand_backward == candidate)[0]]
            if len(np.intersect1d(cand_reciprocal, reciprocal)) > 2.0 / 3 * len(cand_reciprocal):
                expansion = np.append(expansion, cand_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original_dist[i, expansion])
        weights_v[i, expansion] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num, ]

    if k2 != 1:
        expanded = np.zeros_like(weights_v, dtype=np.float32)
        for i in range(all_num):
            expanded[i, :] = np.mean(weights_v[initial_rank[i, :k2], :], axis=0)
        weights_v = expanded
        del expanded
    del initial_rank

    inv_index = [np.where(weights_v[:, i] != 0)[0] for i in range(all_num)]
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, all_num], dtype=np.float32)
        ind_non_zero = np.where(weights_v[i, :] != 0)[0]
        ind_images = [inv_index[ind] for ind in ind_non_zero]
        for j in range(len(ind_non_zero)):
            temp_min[0, ind_images[j]] = temp_min[0, ind_images[j]] + np.minimum(
                weights_v[i, ind_non_zero[j]], weights_v[ind_images[j], ind_non_zero[j]])
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)

    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    del original_dist, weights_v, jaccard_dist
    return final_dist[:query_num, query_num:]
