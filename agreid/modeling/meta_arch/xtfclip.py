"""The X-TFCLIP extras (``BiDAlab/X-TFCLIP``) that act around the TF-CLIP model rather than inside it.

The architectural extras (bicubic grid resize, frame embedding, attention pooling, learned memory weighting,
instance-norm necks, online label smoothing) are switches of :class:`~.tfclip.TFCLIP` (MODEL.TFCLIP.*). Here:

- :func:`centralize_gradients`: X-TFCLIP's training loop subtracts, after every backward, from the gradient of
  each parameter with more than one dimension its mean over all but the first dimension (gradient
  centralization). agreid does it with a gradient hook on those parameters (GC is linear, so hooking the
  per-backward gradient equals editing the accumulated ``.grad`` after a zeroed step, also under AMP scaling
  and DDP averaging). Switch: MODEL.TFCLIP.GRAD_CENTRALIZATION.
- :func:`flip_averaged`: the test script (``do_inference_rrs_visualize``) averages the clip feature with that
  of the horizontally flipped clip. Switch: MODEL.TFCLIP.FLIP_TEST.

The soft-biometric distance masking of the same script is an evaluation option, see
:mod:`agreid.evaluation.soft_biometrics`.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import torch
from torch import nn


def centralize_gradient(grad: torch.Tensor) -> torch.Tensor:
    """``grad`` minus its mean over every dimension but the first (unchanged for 0-D / 1-D tensors)."""
    if grad.dim() <= 1:
        return grad
    return grad - grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True)


def centralize_gradients(model: nn.Module) -> List[torch.utils.hooks.RemovableHandle]:
    """Hook :func:`centralize_gradient` on every trainable parameter of ``model`` with more than one dimension."""
    return [p.register_hook(centralize_gradient) for p in model.parameters() if p.requires_grad and p.dim() > 1]


def flip_averaged(feature_fn: Callable[..., torch.Tensor], clips: torch.Tensor, camids: Optional[torch.Tensor],
                  views: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of ``feature_fn`` on B×T×3×H×W ``clips`` and on the clips mirrored left-right."""
    return (feature_fn(clips, camids, views) + feature_fn(torch.flip(clips, dims=[-1]), camids, views)) / 2.0


__all__ = ["centralize_gradient", "centralize_gradients", "flip_averaged"]
