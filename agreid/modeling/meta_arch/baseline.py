"""The BoT re-ID baseline: backbone, BNNeck head, label-smoothed ID loss and batch-hard triplet loss."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence, Union

import torch
from torch import nn

from agreid.registries import HEAD_REGISTRY, LOSS_REGISTRY, META_ARCH_REGISTRY

from ..backbones import build_backbone


def build_losses(names: Sequence[str], cfg) -> nn.ModuleList:
    """Loss modules from their LOSS_REGISTRY names; each must have ``name`` and ``input_key`` attributes."""
    losses = nn.ModuleList(LOSS_REGISTRY.get(n).from_config(cfg) for n in names)
    seen = [loss.name for loss in losses]
    if len(set(seen)) != len(seen):
        raise ValueError(f"MODEL.LOSSES.NAMES {tuple(names)} gives duplicate loss names {seen}")
    return losses


def apply_losses(losses: Sequence[nn.Module], outputs: Mapping[str, Any],
                 targets: torch.Tensor) -> Dict[str, torch.Tensor]:
    """``{"loss_<name>": loss(outputs[loss.input_key], targets)}`` for each loss; a missing output is an error."""
    result = {}
    for loss in losses:
        inputs = outputs.get(loss.input_key)
        if inputs is None:
            hint = (" (the head has no classifier: set MODEL.HEADS.NUM_CLASSES to the number of "
                    "training identities)") if loss.input_key == "cls_logits" else ""
            raise RuntimeError(f"{type(loss).__name__} needs head output '{loss.input_key}', which the "
                               f"model did not produce{hint}")
        result[f"loss_{loss.name}"] = loss(inputs, targets)
    return result


class Baseline(nn.Module):
    """Backbone → head; training returns ``{"loss_<name>": scalar}`` for each loss, evaluation the B×D features.

    Each loss reads the head output named by its ``input_key`` (``cls_logits``, ``features_before``...).
    Video clips (B×S×3×H×W) are encoded frame by frame and the frame features averaged over time
    before the head (temporal average pooling, the usual image-model video baseline).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, losses: Sequence[nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.losses = losses if isinstance(losses, nn.ModuleList) else nn.ModuleList(losses)

    @classmethod
    def from_config(cls, cfg) -> "Baseline":
        """Backbone (with MODEL.PRETRAIN_PATH loaded), MODEL.HEADS.NAME head and MODEL.LOSSES.NAMES losses."""
        backbone = build_backbone(cfg)
        head = HEAD_REGISTRY.get(cfg.MODEL.HEADS.NAME)(cfg, backbone.out_dim)
        return cls(backbone, head, build_losses(cfg.MODEL.LOSSES.NAMES, cfg))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, batch: Mapping[str, Any]) -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        """Losses (training) or test features (evaluation) for a loader batch; the batch is not modified."""
        images = batch["images"].to(self.device, non_blocking=True)
        if images.dim() == 5:
            frames = self.backbone(images.flatten(0, 1))
            features = frames.reshape(images.shape[:2] + frames.shape[1:]).mean(1)
        else:
            features = self.backbone(images)
        outputs = self.head(features)
        if not self.training:
            return outputs
        targets = batch["targets"].to(self.device, non_blocking=True)
        return self.compute_losses(outputs, targets)

    def compute_losses(self, outputs: Mapping[str, torch.Tensor], targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Apply every loss to its head output and the identity targets."""
        return apply_losses(self.losses, outputs, targets)


@META_ARCH_REGISTRY.register("Baseline")
def build_baseline(cfg) -> nn.Module:
    """Registry builder: :class:`Baseline` from the config."""
    return Baseline.from_config(cfg)
