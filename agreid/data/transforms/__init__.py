"""Augmentations on uint8 H×W×3 RGB arrays (then normalised tensors), each driven by an explicit per-item rng."""
from agreid.data.transforms.build import build_transforms
from agreid.data.transforms.compose import Compose, require_rng
from agreid.data.transforms.erasing import RandomErasing
from agreid.data.transforms.geometric import PadRandomCrop, RandomHorizontalFlip, Resize
from agreid.data.transforms.photometric import ColorJitter
from agreid.data.transforms.tensor import (CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ToTensorNormalize,
                                           norm_stats)

__all__ = ["build_transforms", "Compose", "require_rng", "Resize", "RandomHorizontalFlip", "PadRandomCrop",
           "ColorJitter", "ToTensorNormalize", "RandomErasing", "norm_stats",
           "IMAGENET_MEAN", "IMAGENET_STD", "CLIP_MEAN", "CLIP_STD"]
