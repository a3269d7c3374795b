"""Whole re-ID models registered in META_ARCH_REGISTRY."""
from .agw import AGW
from .baseline import Baseline, build_baseline, build_losses
from .clipreid import CLIPReID
from .msp import MSP
from .secap import SeCap
from .svpr import SVPR
from .tfclip import TFCLIP
from .transreid import TransReID
from .vdt import VDT

__all__ = ["Baseline", "build_baseline", "build_losses", "SeCap", "TransReID", "VDT", "AGW", "TFCLIP", "CLIPReID",
           "MSP", "SVPR"]
