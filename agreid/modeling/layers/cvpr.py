"""SVPR-ReID's Context-Vision Progressive Refinement (CVPR, ``ContextVisionProgressiveRenfineNet``).

A learnable token attends (``vt_fuse``, no residual) to the semantic context cls + attribute feature; then
``stages`` rounds share ONE :class:`ContextVisionBlock` (the reference reuses the same instance): the query scores
the current candidate patches (head-averaged softmax attention, :class:`AttentionScoreMask`), keeps the top
``topk`` fraction (128 → 64 → 32 → 16), updates itself from them (self-attention, cross-attention, MLP, each
with LayerNorm) and updates them from itself; a gate g = sigmoid(Linear(q)) blends it into the running token
(g·q + (1−g)·token). Returns the final token and a copy of the patches with the updated ones written back.

Reference quirks reproduced by default (each has a switch for the corrected behaviour):

- ``batch_context``: the reference adds the B×1×D cls and the B×D attribute feature, which broadcasts to B×B×D,
  so every image's query attends to cls_i + attr_j for all j in the batch: the test feature depends on the
  other images of the batch. False: each image attends to its own cls_i + attr_i.
- ``scatter_by_score``: the selected patches reach the block in index order but are written back to the
  positions in score order, so updates land on other selected patches. False: each update goes to its own patch.
The following candidates are always taken from the original patches (as in the reference).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from .init import init_linear_trunc_normal
from .svpr_blocks import PlainMLP, TokenCrossAttention, TokenSelfAttention


class AttentionScoreMask(nn.Module):
    """Head-averaged softmax attention of B×1×D queries over B×N×D keys (q/k projections without bias)."""

    def __init__(self, dim: int, num_heads: int = 8) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q_ = nn.Linear(dim, dim, bias=False)
        self.k_ = nn.Linear(dim, dim, bias=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """B×N scores of the first query over the keys."""
        b, nq, d = q.shape
        h = self.num_heads
        query = self.q_(q).reshape(b, nq, h, d // h).transpose(1, 2)
        key = self.k_(k).reshape(b, k.shape[1], h, d // h).transpose(1, 2)
        attn = ((query @ key.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return attn.mean(dim=1)[:, 0]


class ContextVisionBlock(nn.Module):
    """Query update (self-attn, cross-attn to the patches, MLP; post-LN each) and patch update from the query."""

    def __init__(self, dim: int, num_heads: int = 8, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TokenSelfAttention(dim, num_heads=num_heads)
        self.cross_attn = TokenCrossAttention(dim, num_heads=num_heads)
        self.cross_attn2 = TokenCrossAttention(dim, num_heads=num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = PlainMLP(dim, int(dim * mlp_ratio))
        self.norm4 = nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        q = self.norm1(q + self.attn(q))
        q = self.norm2(q + self.cross_attn(q, k))
        q = self.norm4(q + self.mlp(q))
        k = self.norm3(k + self.cross_attn2(k, q))
        return q, k


class ContextVisionRefinement(nn.Module):
    """CVPR (see the module docstring); parameter names as the reference's ``CVPRNet``."""

    def __init__(self, dim: int, num_heads: int = 8, stages: int = 3, topk: float = 0.5,
                 batch_context: bool = True, scatter_by_score: bool = True) -> None:
        super().__init__()
        self.topk, self.batch_context, self.scatter_by_score = topk, batch_context, scatter_by_score
        self.vt_fuse = TokenCrossAttention(dim, num_heads=num_heads)
        shared = ContextVisionBlock(dim, num_heads=num_heads)
        self.blocks = nn.ModuleList([shared] * stages)
        self.ln_norm = nn.LayerNorm(dim)  # built, never used (reference)
        self.attn_masker = AttentionScoreMask(dim, num_heads=num_heads)
        self.gate_fc = nn.Sequential(nn.Linear(dim, dim), nn.Sigmoid())
        self.apply(init_linear_trunc_normal)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor, token: torch.Tensor,
                attr: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(refined token B×D, patches B×N×D with the updates written in, bool B×N mask of updated patches)
        from the cls (B×D), patches, the learnable token (B×1×D) and the attribute feature (B×D or None)."""
        cls = cls.unsqueeze(1)
        if attr is None:
            context = cls
        elif self.batch_context:
            context = cls + attr  # B×1×D + B×D broadcasts to B×B×D (reference)
        else:
            context = cls + attr.unsqueeze(1)
        query = self.vt_fuse(token, context, context)
        b, n, d = patches.shape
        candidates = torch.arange(n, device=patches.device).expand(b, n)
        updated = patches.clone()
        touched = torch.zeros(b, n, dtype=torch.bool, device=patches.device)
        for block in self.blocks:
            keys = patches.gather(1, candidates.unsqueeze(-1).expand(-1, -1, d))
            keep = int(keys.shape[1] * self.topk)
            order = self.attn_masker(query, keys).topk(keep, dim=1).indices  # best first
            chosen = candidates.gather(1, order)
            # the reference feeds the kept patches in candidate order (boolean mask) and scatters to `chosen`
            fed = order.sort(dim=1).values if self.scatter_by_score else order
            selected = keys.gather(1, fed.unsqueeze(-1).expand(-1, -1, d))
            query, refined = block(query, selected)
            updated = updated.scatter(1, chosen.unsqueeze(-1).expand(-1, -1, d), refined.to(updated.dtype))
            touched = touched.scatter(1, chosen, True)
            candidates = chosen
            gate = self.gate_fc(query)
            token = gate * query + (1 - gate) * token
        return token.squeeze(1), updated, touched


__all__ = ["ContextVisionRefinement", "ContextVisionBlock", "AttentionScoreMask"]
