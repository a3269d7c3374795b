"""Gallery-removal rules: which gallery items each query is ranked against.

A rule is one function registered in :data:`GALLERY_RULE_REGISTRY` with the signature
``rule(q_pids, g_pids, q_camids, g_camids, q_views, g_views) -> keep`` where the query tensors
hold one chunk of C queries, the gallery tensors hold all G items (1-D, on the same device) and
``keep`` is a C×G bool tensor, True where the gallery item stays in that query's ranking.
``q_views`` / ``g_views`` are :func:`agreid.data.records.view_index` codes, or None when the
caller has no view information. Adding a protocol's rule means registering one such function.
"""
from __future__ import annotations

from typing import Optional

import torch

from agreid.registries import GALLERY_RULE_REGISTRY


@GALLERY_RULE_REGISTRY.register("market")
def market_rule(q_pids: torch.Tensor, g_pids: torch.Tensor, q_camids: torch.Tensor,
                g_camids: torch.Tensor, q_views: Optional[torch.Tensor] = None,
                g_views: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Remove gallery items with the query's pid AND the query's camera (Market-1501 convention)."""
    same_pid = q_pids[:, None] == g_pids[None, :]
    same_cam = q_camids[:, None] == g_camids[None, :]
    return ~(same_pid & same_cam)


@GALLERY_RULE_REGISTRY.register("none")
def keep_all_rule(q_pids: torch.Tensor, g_pids: torch.Tensor, q_camids: torch.Tensor,
                  g_camids: torch.Tensor, q_views: Optional[torch.Tensor] = None,
                  g_views: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Keep the whole gallery for every query (RegDB, where query and gallery are disjoint modalities)."""
    return torch.ones(q_pids.shape[0], g_pids.shape[0], dtype=torch.bool, device=g_pids.device)
