"""TransReID (He et al., ICCV 2021): ViT + SIE, optionally with the Jigsaw Patch Module (JPM).

Re-implements ``build_transformer`` (no JPM) and ``build_transformer_local`` (JPM) of ``damo-cv/TransReID``
(``model/make_model.py``) and its loss combination (``loss/make_loss.py``), with agreid's losses and heads.
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from agreid.config.config import ConfigError
from agreid.registries import META_ARCH_REGISTRY

from ..backbones.vit_transreid import TransReIDViT, build_transreid_vit
from ..heads.bnneck import BNNeckHead
from .baseline import build_losses

logger = logging.getLogger(__name__)


def shuffle_patches(tokens: torch.Tensor, shift: int, groups: int) -> torch.Tensor:
    """TransReID's ``shuffle_unit``: the N patch tokens of a B×(1+N)×D sequence, shifted and shuffled (B×N×D).

    Shift: the first ``shift - 1`` patches move to the end. Shuffle: view as (B, groups, N/groups, D), swap the
    two middle axes and flatten, interleaving the groups. Reference quirk kept: when N is not divisible by
    ``groups`` the second-to-last token is appended once (enough for 2 groups, the only value the reference
    configs use).
    """
    b, _, d = tokens.shape
    x = torch.cat([tokens[:, shift:], tokens[:, 1:shift]], dim=1)
    if x.shape[1] % groups:
        x = torch.cat([x, x[:, -2:-1]], dim=1)
    return x.view(b, groups, -1, d).transpose(1, 2).reshape(b, -1, d)


class TransReID(nn.Module):
    """TransReID: :class:`TransReIDViT` backbone and BNNeck heads; optionally the JPM branches.

    Without JPM the global feature is the class token after the final norm, with one BNNeck head
    (``heads.0``). With JPM the backbone stops before its last block (:meth:`TransReIDViT.drop_last_block`);
    ``global_branch`` and ``local_branch`` are copies of that block plus the final norm. The global feature is
    the class token of ``global_branch``; the patch tokens are (optionally) shifted and shuffled
    (:func:`shuffle_patches`), cut into ``divide_length`` consecutive groups of N // divide_length tokens (the
    remainder is never used, as in the reference), each group is prefixed by the shared class token and run
    through ``local_branch``; its class token is local feature i, with head ``heads.i``.

    Training returns ``{"loss_<name>": tensor}``: every loss of MODEL.LOSSES.NAMES applied to each branch,
    combined as ``0.5 · global + 0.5 · mean(locals)`` with JPM (plain global loss without). Evaluation returns
    the global feature, or cat[global, local_1/4, ..., local_K/4] with JPM (the reference's division by 4 is
    kept whatever K is), each before or after its BNNeck per MODEL.HEADS.NECK_FEAT.
    """

    def __init__(self, backbone: TransReIDViT, num_classes: int, losses: Sequence[nn.Module],
                 jpm: bool = False, shift_num: int = 5, shuffle_groups: int = 2, divide_length: int = 4,
                 rearrange: bool = True, neck_feat: str = "before") -> None:
        super().__init__()
        self.backbone = backbone
        self.jpm = jpm
        self.shift_num, self.shuffle_groups = shift_num, shuffle_groups
        self.divide_length, self.rearrange = divide_length, rearrange
        dim = backbone.out_dim
        if jpm:
            if divide_length < 1:
                raise ConfigError(f"MODEL.TRANSREID.DEVIDE_LENGTH must be >= 1, got {divide_length}")
            block, norm = backbone.drop_last_block()
            self.global_branch = nn.Sequential(copy.deepcopy(block), copy.deepcopy(norm))
            self.local_branch = nn.Sequential(copy.deepcopy(block), copy.deepcopy(norm))
        num_heads = 1 + (divide_length if jpm else 0)
        self.heads = nn.ModuleList(BNNeckHead(dim, num_classes=num_classes, pool="token", neck_feat=neck_feat)
                                   for _ in range(num_heads))
        self.losses = losses if isinstance(losses, nn.ModuleList) else nn.ModuleList(losses)

    @classmethod
    def from_config(cls, cfg) -> "TransReID":
        """Backbone from MODEL.BACKBONE.VIT / MODEL.SIE (MODEL.PRETRAIN_PATH loaded TransReID's way), heads for
        MODEL.HEADS.NUM_CLASSES, losses MODEL.LOSSES.NAMES, JPM from MODEL.TRANSREID.*."""
        t = cfg.MODEL.TRANSREID
        if cfg.MODEL.BACKBONE.NAME != "vit_transreid":
            raise ConfigError(f"META_ARCHITECTURE TransReID needs MODEL.BACKBONE.NAME vit_transreid, "
                             f"got '{cfg.MODEL.BACKBONE.NAME}'")
        v = cfg.MODEL.BACKBONE.VIT
        if t.JPM and (v.DROP_RATE or v.ATTN_DROP_RATE):
            logger.warning("TransReID with JPM: the reference ignores MODEL.BACKBONE.VIT.DROP_RATE / "
                           "ATTN_DROP_RATE (its JPM model never passes them); agreid applies them")
        backbone = build_transreid_vit(cfg)
        return cls(backbone, cfg.MODEL.HEADS.NUM_CLASSES, build_losses(cfg.MODEL.LOSSES.NAMES, cfg),
                   jpm=t.JPM, shift_num=t.SHIFT_NUM, shuffle_groups=t.SHUFFLE_GROUP,
                   divide_length=t.DEVIDE_LENGTH, rearrange=t.RE_ARRANGE, neck_feat=cfg.MODEL.HEADS.NECK_FEAT)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def branch_tokens(self, tokens: torch.Tensor) -> List[torch.Tensor]:
        """Token sequences whose class token each head pools: [global] or [global, local_1, ..., local_K]."""
        if not self.jpm:
            return [tokens]
        out = [self.global_branch(tokens)]
        cls_token = tokens[:, :1]
        patch_length = (tokens.shape[1] - 1) // self.divide_length
        x = shuffle_patches(tokens, self.shift_num, self.shuffle_groups) if self.rearrange else tokens[:, 1:]
        for i in range(self.divide_length):
            group = x[:, patch_length * i:patch_length * (i + 1)]
            out.append(self.local_branch(torch.cat((cls_token, group), dim=1)))
        return out

    def forward(self, batch: Mapping[str, Any]) -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        """Losses (training) or test features (evaluation) for a loader batch (``images``, ``targets``,
        ``camids``, ``views``); the batch is not modified."""
        device = self.device
        images = batch["images"].to(device, non_blocking=True)
        if images.dim() == 5:
            raise ValueError("TransReID is an image model; got a B×S×3×H×W video batch")
        side = {k: batch[k].to(device) if isinstance(batch.get(k), torch.Tensor) else None
                for k in ("camids", "views")}
        tokens = self.backbone(images, side["camids"], side["views"])
        outputs = [head(t) for head, t in zip(self.heads, self.branch_tokens(tokens))]
        if not self.training:
            if not self.jpm:
                return outputs[0]
            return torch.cat([outputs[0]] + [o / 4 for o in outputs[1:]], dim=1)
        targets = batch["targets"].to(device, non_blocking=True)
        return self.compute_losses(outputs, targets)

    def compute_losses(self, outputs: Sequence[Mapping[str, torch.Tensor]],
                       targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Each loss on each branch; with JPM ``0.5 · global + 0.5 · mean(locals)``."""
        result = {}
        for loss in self.losses:
            values = []
            for out in outputs:
                inputs: Optional[torch.Tensor] = out.get(loss.input_key)
                if inputs is None:
                    hint = (" (set MODEL.HEADS.NUM_CLASSES to the number of training identities)"
                            if loss.input_key == "cls_logits" else "")
                    raise RuntimeError(f"{type(loss).__name__} needs head output '{loss.input_key}', which the "
                                       f"TransReID heads did not produce{hint}")
                values.append(loss(inputs, targets))
            if len(values) == 1:
                result[f"loss_{loss.name}"] = values[0]
            else:
                result[f"loss_{loss.name}"] = 0.5 * values[0] + 0.5 * (sum(values[1:]) / len(values[1:]))
        return result


@META_ARCH_REGISTRY.register("TransReID")
def build_transreid(cfg) -> nn.Module:
    """Registry builder: :class:`TransReID` from the config."""
    return TransReID.from_config(cfg)
