"""Verification-style metric: true-positive rate at fixed false-positive rates over query-gallery pairs."""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from agreid.evaluation.rank import ArrayLike, _as_dist, _as_tensor
from agreid.evaluation.rules import RankMeta, resolve_rule

DEFAULT_FPRS = (1e-4, 1e-3, 1e-2)


def tpr_at_fpr(dist: Union[np.ndarray, torch.Tensor], q_pids: ArrayLike, g_pids: ArrayLike,
               q_camids: ArrayLike, g_camids: ArrayLike, rule: str = "market",
               q_views: Optional[ArrayLike] = None, g_views: Optional[ArrayLike] = None,
               fprs: Sequence[float] = DEFAULT_FPRS, *, q_times: Optional[ArrayLike] = None,
               g_times: Optional[ArrayLike] = None, chunk_size: Optional[int] = None) -> Dict[str, float]:
    """For each FPR f: accept pairs closer than the distance that admits at most f of the negatives.

    Pairs are the (query, kept gallery item) pairs of the protocol's rule: same pid = positive,
    other pid = negative. Returns ``{"TPR@FPR=1e-04": fraction, ...}``.
    """
    d = _as_dist(dist)
    dev = d.device
    q = RankMeta(_as_tensor(q_pids, dev), _as_tensor(q_camids, dev), _as_tensor(q_views, dev),
                 _as_tensor(q_times, dev))
    g = RankMeta(_as_tensor(g_pids, dev), _as_tensor(g_camids, dev), _as_tensor(g_views, dev),
                 _as_tensor(g_times, dev))
    rule_fn = resolve_rule(rule)
    step = chunk_size or max(1, (1 << 22) // max(d.shape[1], 1))
    pos, neg = [], []
    for start in range(0, d.shape[0], step):
        block = d[start:start + step]
        keep = rule_fn(q[start:start + step], g)
        same = q.pids[start:start + step, None] == g.pids[None, :]
        pos.append(block[keep & same].float().cpu())
        neg.append(block[keep & ~same].float().cpu())
    pos_d, neg_d = torch.cat(pos), torch.cat(neg)
    if pos_d.numel() == 0 or neg_d.numel() == 0:
        raise ValueError("TPR@FPR needs both positive and negative pairs after the removal rule")
    out = {}
    for f in fprs:
        allowed = int(math.floor(f * neg_d.numel()))
        threshold = (float("inf") if allowed >= neg_d.numel()
                     else float(torch.kthvalue(neg_d, allowed + 1).values))
        out[f"TPR@FPR={f:.0e}"] = float((pos_d < threshold).double().mean())
    return out
