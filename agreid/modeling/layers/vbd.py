"""SVPR-ReID's View Bidirectional Decoupling (VBD, ``ViewBidirectionalDecoupling_block``).

The image CLS token and the view token (the text-derived view prompt after the last ViT block) exchange one
cross-attention each way: the CLS loses α × its attention to the view token (α learnable, init 1), then the view
token loses its attention to that view-free CLS and goes through LayerNorm and a Linear-ReLU-Linear MLP.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn


class ViewBidirectionalDecoupling(nn.Module):
    """(cls, view) B×D each → (view-free cls, view feature) B×D each; two 4-head ``nn.MultiheadAttention``."""

    def __init__(self, dim: int, num_heads: int = 4) -> None:
        super().__init__()
        self.CA_view2cls = nn.MultiheadAttention(embed_dim=dim, num_heads=num_heads, batch_first=True)
        self.CA_cls2view = nn.MultiheadAttention(embed_dim=dim, num_heads=num_heads, batch_first=True)
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, cls: torch.Tensor, view: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        cls, view = cls.unsqueeze(1), view.unsqueeze(1)
        to_cls, _ = self.CA_view2cls(cls, view, view, need_weights=False)
        cls_inv = cls - self.alpha * to_cls
        to_view, _ = self.CA_cls2view(view, cls_inv, cls_inv, need_weights=False)
        view_feat = self.mlp(self.norm(view - to_view))
        return cls_inv.squeeze(1), view_feat.squeeze(1)


__all__ = ["ViewBidirectionalDecoupling"]
