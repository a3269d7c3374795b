"""AGW's ResNet-50 with non-local blocks, and its two-stream form with one stem per modality.

Reference: ``embed_net`` of mangye16/Cross-Modal-Re-ID-baseline (two stems ``visible_module`` /
``thermal_module`` + a shared ``base_resnet``) and ``ResNetNL`` of mangye16/ReID-Survey (one stem). Both
insert non-local blocks after the last 2 blocks of layer2 and the last 3 of layer3 (``non_layers [0,2,3,0]``)
and set the stride of layer4 to 1. ReID-Survey's stem has no ReLU (conv1 → bn1 → maxpool; its
``# self.relu`` line is commented out), the cross-modal one has (MODEL.AGW.STEM_RELU).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from agreid.config.config import ConfigError
from agreid.registries import BACKBONE_REGISTRY

from ..layers.non_local import NonLocalBlock
from ..pretrained import LoadReport, load_into, read_state_dict, strip_prefixes

BLOCKS_50 = (3, 4, 6, 3)
STEM_KEYS = ("conv1.", "bn1.")


class Stem(nn.Module):
    """conv 7×7 / 2 → BN → (ReLU) → max-pool 3×3 / 2: the part of a ResNet before layer1."""

    def __init__(self, width: int = 64, relu: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


def _make_stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """torchvision's ``ResNet._make_layer`` for bottlenecks (same module names, so ImageNet keys fit)."""
    downsample = None
    if stride != 1 or in_planes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(nn.Conv2d(in_planes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(planes * Bottleneck.expansion))
    layers = [Bottleneck(in_planes, planes, stride, downsample)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNetNL(nn.Module):
    """Bottleneck ResNet (ResNet-50 by default) with non-local blocks and ``num_stems`` modality stems.

    ``non_local[i]`` blocks follow the last ``non_local[i]`` residual blocks of stage i+1 (``non_local2.j``
    after block ``len(layer2) - non_local[1] + j``). ``forward(x, modalities)`` sends image b through stem
    ``modalities[b]`` (0 visible, 1 infrared, agreid's ``modality_index``) and keeps the batch's row order,
    so a mixed batch runs each image through its own stem and a one-modality batch one stem only; with one
    stem ``modalities`` is ignored. Each stem's BatchNorm sees only its modality's images, as in the reference,
    which concatenates the visible then the thermal stem outputs: every later layer and loss is invariant to
    the row order, so only the order of the outputs differs. ``base_width`` (64 in ResNet-50) scales every
    stage; smaller values give the tiny models of the tests.
    """

    def __init__(self, last_stride: int = 1, non_local: Sequence[int] = (0, 2, 3, 0), nl_reduction: int = 0,
                 num_stems: int = 1, stem_relu: bool = True, base_width: int = 64,
                 blocks: Sequence[int] = BLOCKS_50) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ConfigError(f"MODEL.BACKBONE.LAST_STRIDE must be 1 or 2, got {last_stride}")
        if num_stems not in (1, 2):
            raise ConfigError(f"An AGW ResNet has 1 stem or 2 (visible, infrared), got {num_stems}")
        if len(non_local) != 4 or any(not 0 <= n <= b for n, b in zip(non_local, blocks)):
            raise ConfigError(f"MODEL.AGW.NON_LOCAL {list(non_local)} must give 4 counts, each at most the stage's "
                              f"{list(blocks)} blocks")
        if base_width < 1:
            raise ConfigError(f"MODEL.AGW.BASE_WIDTH must be >= 1, got {base_width}")
        self.num_stems = num_stems
        self.stem_relu = stem_relu
        self.stems = nn.ModuleList(Stem(base_width, stem_relu) for _ in range(num_stems))
        strides = (1, 2, 2, last_stride)
        in_planes = base_width
        for i, (n, stride) in enumerate(zip(blocks, strides)):
            planes = base_width * 2 ** i
            setattr(self, f"layer{i + 1}", _make_stage(in_planes, planes, n, stride))
            in_planes = planes * Bottleneck.expansion
            setattr(self, f"non_local{i + 1}",
                    nn.ModuleList(NonLocalBlock(in_planes, nl_reduction) for _ in range(non_local[i])))
        self.out_dim = in_planes

    def stages(self) -> List[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def stem(self, x: torch.Tensor, modalities: Optional[torch.Tensor]) -> torch.Tensor:
        """Each image through the stem of its modality, rows in input order."""
        if self.num_stems == 1:
            return self.stems[0](x)
        if modalities is None:
            raise ValueError("The two-stream AGW ResNet needs the batch's 'modalities' (0 visible, 1 infrared)")
        modalities = modalities.to(x.device).reshape(-1)
        if modalities.numel() != x.shape[0]:
            raise ValueError(f"{modalities.numel()} modality codes for a batch of {x.shape[0]} images")
        present = torch.unique(modalities).tolist()
        if any(m not in range(self.num_stems) for m in present):
            raise ValueError(f"Modality codes must be 0 (visible) or 1 (infrared), got {sorted(present)}")
        if len(present) == 1:
            return self.stems[present[0]](x)
        out = None
        for m in present:
            rows = (modalities == m).nonzero().flatten()
            y = self.stems[m](x.index_select(0, rows))
            if out is None:
                out = y.new_empty((x.shape[0],) + y.shape[1:])
            out.index_copy_(0, rows, y)
        return out

    def forward(self, x: torch.Tensor, modalities: Optional[torch.Tensor] = None) -> torch.Tensor:
        """B×3×H×W images (and their B modality codes) → the B×C×h×w layer4 map."""
        x = self.stem(x, modalities)
        for i, stage in enumerate(self.stages()):
            blocks = getattr(self, f"non_local{i + 1}")
            first_nl = len(stage) - len(blocks)
            for j, block in enumerate(stage):
                x = block(x)
                if j >= first_nl:
                    x = blocks[j - first_nl](x)
        return x

    def load_imagenet(self, path: str) -> LoadReport:
        """Load a torchvision ImageNet ResNet file: its stem into every stem (as the reference builds each
        modality module from the same ImageNet model), layer1-4 into the trunk; ``fc`` is unused, the
        non-local blocks keep their initialisation."""
        state = strip_prefixes(read_state_dict(path))
        mapped = {}
        for key, value in state.items():
            if key.startswith(STEM_KEYS):
                for s in range(self.num_stems):
                    mapped[f"stems.{s}.{key}"] = value
            else:
                mapped[key] = value
        return load_into(self, mapped, LoadReport(path=path))


def build_resnet_nl(cfg, load_pretrain: bool = True) -> ResNetNL:
    """:class:`ResNetNL` from MODEL.BACKBONE.LAST_STRIDE and MODEL.AGW.*; MODEL.PRETRAIN_PATH loaded when set."""
    a = cfg.MODEL.AGW
    model = ResNetNL(last_stride=cfg.MODEL.BACKBONE.LAST_STRIDE, non_local=tuple(a.NON_LOCAL),
                     nl_reduction=a.NL_REDUCTION, num_stems=2 if a.TWO_STREAM else 1, stem_relu=a.STEM_RELU,
                     base_width=a.BASE_WIDTH)
    if load_pretrain and cfg.MODEL.PRETRAIN_PATH:
        model.load_imagenet(cfg.MODEL.PRETRAIN_PATH)
    return model


@BACKBONE_REGISTRY.register("resnet50_nl")
def _build_resnet50_nl(cfg) -> nn.Module:
    """Registry builder without pretrained loading (:func:`build_backbone`'s generic loader would not fill the
    modality stems); the ``AGW`` meta-architecture loads MODEL.PRETRAIN_PATH with :meth:`ResNetNL.load_imagenet`."""
    return build_resnet_nl(cfg, load_pretrain=False)
