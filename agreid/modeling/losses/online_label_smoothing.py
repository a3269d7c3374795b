"""Online label smoothing (Zhang et al., "Delving Deep into Label Smoothing", TIP 2021), as X-TFCLIP uses it.

Re-implements ``OnlineLabelSmoothing`` of ``BiDAlab/X-TFCLIP`` (``loss/online_label_smooth.py``). The loss is
``alpha · CE(logits, y) + (1 − alpha) · Σ_k −S[k, y] · log p_k``, where column y of the K×K matrix S is the
soft target of class y. In the first epoch S is plain label smoothing (1 − smoothing on the diagonal,
smoothing / (K − 1) elsewhere). During an epoch every correctly classified sample adds its predicted
distribution to column (its class) of ``update``; :meth:`next_epoch` makes the column averages the new S
(classes never predicted correctly get an all-zero column, as in the reference). All three tensors are
buffers, so a checkpoint taken at an epoch boundary resumes exactly. The engine calls
:meth:`on_epoch_end` after every training epoch, before buffers are synced and checkpoints written.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from agreid.config.config import ConfigError
from agreid.registries import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class OnlineLabelSmoothing(nn.Module):
    """Hard CE mixed with per-class soft targets learned from the previous epoch's correct predictions.

    Reads ``cls_logits``; reported as ``loss_ols``. The statistics are collected only in training mode.
    Under DDP, :meth:`next_epoch` sums the statistics of all ranks before averaging (what one process
    that saw every batch would compute); it must then be called on every rank.
    """

    name = "ols"
    input_key = "cls_logits"

    def __init__(self, num_classes: int, alpha: float = 0.5, smoothing: float = 0.1) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"OnlineLabelSmoothing needs at least 2 classes (MODEL.HEADS.NUM_CLASSES), "
                              f"got {num_classes}")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"Online label smoothing alpha must be in [0, 1], got {alpha}")
        self.num_classes, self.alpha, self.smoothing = int(num_classes), float(alpha), float(smoothing)
        supervise = torch.full((num_classes, num_classes), smoothing / (num_classes - 1))
        supervise.fill_diagonal_(1.0 - smoothing)
        self.register_buffer("supervise", supervise)
        self.register_buffer("update", torch.zeros(num_classes, num_classes))
        self.register_buffer("idx_count", torch.zeros(num_classes))

    @classmethod
    def from_config(cls, cfg) -> "OnlineLabelSmoothing":
        """K from MODEL.HEADS.NUM_CLASSES, alpha and first-epoch smoothing from MODEL.TFCLIP.OLS_*."""
        t = cfg.MODEL.TFCLIP
        return cls(cfg.MODEL.HEADS.NUM_CLASSES, alpha=t.OLS_ALPHA, smoothing=t.OLS_SMOOTHING)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of B×K ``logits`` for B class indices; accumulates the epoch statistics in training mode."""
        log_probs = logits.float().log_softmax(dim=-1)
        if self.training:
            self._accumulate(log_probs.detach().exp(), targets)
        soft_targets = self.supervise.index_select(1, targets).t()
        soft = (-soft_targets * log_probs).sum(dim=-1).mean()
        hard = F.cross_entropy(logits.float(), targets)
        return self.alpha * hard + (1.0 - self.alpha) * soft

    @torch.no_grad()
    def _accumulate(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        predicted = probs.argmax(dim=-1)
        correct = (predicted == targets).to(probs.dtype)
        # masked by weight instead of boolean indexing: same sums, no host sync
        self.update.index_add_(1, predicted, (probs * correct[:, None]).t())
        self.idx_count.index_add_(0, predicted, correct)

    @torch.no_grad()
    def next_epoch(self) -> None:
        """End of an epoch: S ← column averages of the collected distributions; statistics reset."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.update)
            dist.all_reduce(self.idx_count)
        count = torch.where(self.idx_count == 0, torch.ones_like(self.idx_count), self.idx_count)
        self.supervise.copy_(self.update / count)
        self.update.zero_()
        self.idx_count.zero_()

    def on_epoch_end(self, epoch: Optional[int] = None) -> None:
        """The engine's epoch-end hook (:class:`agreid.engine.hooks.ModelEpochEnd`): :meth:`next_epoch`."""
        self.next_epoch()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha}, smoothing={self.smoothing}"


__all__ = ["OnlineLabelSmoothing"]
