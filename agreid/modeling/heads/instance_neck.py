"""X-TFCLIP's "BNNeck": per-sample standardisation of each feature vector, no parameters.

``BiDAlab/X-TFCLIP`` replaces TF-CLIP's BatchNorm1d necks by ``nn.InstanceNorm1d(D)`` (affine off, no
running statistics). Called on a 2-D (B, D) tensor, PyTorch reads it as one unbatched (C=B, L=D) sample, so
each row is normalised over its own D entries: (x − mean) / sqrt(var + eps), biased variance, the same in
train and eval mode. That is a LayerNorm without affine, which is what this module computes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InstanceNeck(nn.Module):
    """Row-wise standardisation of a B×D feature (the reference's InstanceNorm1d as it behaves on 2-D input)."""

    def __init__(self, in_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"InstanceNeck expects a B×{self.in_dim} feature, got {tuple(x.shape)}")
        return F.layer_norm(x, (self.in_dim,), eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, eps={self.eps}"


__all__ = ["InstanceNeck"]
