"""Model building: backbones, heads, losses and meta-architectures, each found through its registry."""
import torch
from torch import nn

from agreid.registries import META_ARCH_REGISTRY

from . import backbones, conversion, heads, losses, meta_arch  # noqa: F401  (registration)
from .backbones import build_backbone
from .pretrained import LoadReport, load_pretrained


def resolve_device(name: str) -> torch.device:
    """MODEL.DEVICE as a device: "auto" is this process's GPU when CUDA is available, else the CPU."""
    from agreid.utils.comm import get_local_rank

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("MODEL.DEVICE is cuda but no GPU is available; use MODEL.DEVICE cpu")
        return torch.device("cuda", get_local_rank())
    return torch.device(name)


def build_model(cfg) -> nn.Module:
    """The MODEL.META_ARCHITECTURE model, built from ``cfg`` and moved to MODEL.DEVICE."""
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    return model.to(resolve_device(cfg.MODEL.DEVICE))


__all__ = ["build_model", "build_backbone", "resolve_device", "load_pretrained", "LoadReport"]
