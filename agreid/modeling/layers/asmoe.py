"""SVPR-ReID's Attribute Scatter Mixture-of-Experts (ASMoE, ``AttributeScatterMOE`` and ``MOE_simple``).

The text prompt attends to the image patches (8 heads, no residual); for every attribute i the result plus a
learnable attribute prompt p_i plus the view-free CLS goes through one shared mixture of experts (softmax gate,
top-k experts weighted by their gate probabilities, not renormalised) and a per-attribute BN + classifier
(plain CE). A router (Linear D→1, GELU, Linear 1→D, averaged over channels) scores the attributes; the top
``int(A × topk_ratio)`` are mixed with softmax weights of their scores into the attribute feature.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .init import init_linear_trunc_normal
from .svpr_blocks import BNClassifier, PlainMLP, TokenCrossAttention


class QuickGELU(nn.Module):
    """x · sigmoid(1.702 x) (CLIP's activation, used by the experts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class MLPExpert(nn.Module):
    """Linear D→rD, QuickGELU, Linear rD→D, QuickGELU, LayerNorm (eps 1e-6)."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), QuickGELU(), nn.Linear(hidden, dim), QuickGELU(),
                                 nn.LayerNorm(dim, eps=1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class TopKMixtureOfExperts(nn.Module):
    """Every expert runs; the ``topk`` with the largest softmax gate probabilities are summed, weighted by them."""

    def __init__(self, dim: int, num_experts: int = 4, topk: int = 3) -> None:
        super().__init__()
        if not 1 <= topk <= num_experts:
            raise ValueError(f"ASMoE keeps {topk} of {num_experts} experts; need 1 <= top-k <= experts")
        self.experts = nn.ModuleList([MLPExpert(dim) for _ in range(num_experts)])
        self.gate = nn.Linear(dim, num_experts)
        self.topk = topk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs, idx = self.gate(x).softmax(dim=-1).topk(self.topk, dim=-1)
        outputs = torch.stack([expert(x) for expert in self.experts], dim=1)
        chosen = outputs.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return (chosen * probs.unsqueeze(-1)).sum(dim=1)


class AttributeScatterMoE(nn.Module):
    """ASMoE over the attributes ``names`` with ``num_classes`` classes each (see the module docstring).

    The parameter names are the reference's (``attributesPrompt``, ``attributsHeader.<name>``, ...), heads in the
    order of ``names`` (the reference sorts them). Attribute labels of -1 (unknown) are left out of each
    attribute's CE mean (the reference's plain CE would fail on them).
    """

    def __init__(self, names: Sequence[str], num_classes: Sequence[int], dim: int, num_heads: int = 8,
                 num_experts: int = 4, expert_topk: int = 3, topk_ratio: float = 0.7) -> None:
        super().__init__()
        if len(names) != len(num_classes) or not names:
            raise ValueError(f"ASMoE needs one class count per attribute name, got {len(names)} names and "
                             f"{len(num_classes)} counts")
        bad = [n for n in names if "." in n or not n]
        if bad or len(set(names)) != len(names):
            raise ValueError(f"Attribute names must be unique, non-empty and without '.': {list(names)}")
        self.names = list(names)
        self.topk = int(len(names) * topk_ratio)
        if self.topk < 1:
            raise ValueError(f"ASMoE selects int({len(names)} x {topk_ratio}) = 0 attributes; raise the ratio")
        self.attributesPrompt = nn.Parameter(torch.randn(1, len(names), dim))
        self.cross_attention = TokenCrossAttention(dim, num_heads=num_heads)
        self.attributesMOE = TopKMixtureOfExperts(dim, num_experts, expert_topk)
        self.attributesRouter = PlainMLP(dim, 1)
        self.attributsHeader = nn.ModuleDict({n: BNClassifier(dim, int(c)) for n, c in zip(names, num_classes)})
        self.apply(init_linear_trunc_normal)

    def forward(self, text: torch.Tensor, cls: torch.Tensor, patches: torch.Tensor,
                labels: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(attribute feature B×D, summed attribute CE or None) from the text prompt and view-free CLS (B×D) and
        the B×N×D patches; ``labels`` B×A (-1 unknown)."""
        context = self.cross_attention(text, patches).squeeze(1)
        inputs = context.unsqueeze(1) + self.attributesPrompt + cls.unsqueeze(1)  # B×A×D
        experts, scores, logits = [], [], []
        for i, name in enumerate(self.names):
            x = inputs[:, i]
            out = self.attributesMOE(x)
            experts.append(out)
            logits.append(self.attributsHeader[name](out)[0])
            scores.append(self.attributesRouter(x).mean(dim=-1))
        experts_t, scores_t = torch.stack(experts, dim=1), torch.stack(scores, dim=1)
        top_scores, idx = scores_t.topk(self.topk, dim=1)
        chosen = experts_t.gather(1, idx.unsqueeze(-1).expand(-1, -1, experts_t.shape[-1]))
        feat = (chosen * top_scores.softmax(dim=1).unsqueeze(-1)).sum(dim=1)
        if labels is None:
            return feat, None
        return feat, sum(self.attribute_ce(lg, labels[:, i]) for i, lg in enumerate(logits))

    @staticmethod
    def attribute_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean CE over the images whose label is known (>= 0); 0 when none is."""
        known = (labels >= 0).to(logits.dtype)
        ce = F.cross_entropy(logits, labels.clamp(min=0), reduction="none")
        return (ce * known).sum() / known.sum().clamp(min=1.0)


__all__ = ["AttributeScatterMoE", "TopKMixtureOfExperts", "MLPExpert", "QuickGELU"]
