"""Build the train or test transform pipeline from the ``INPUT`` config node."""
from __future__ import annotations

from typing import Any, List

from agreid.config.config import ConfigError
from agreid.data.opencv import cv2

from agreid.data.transforms.compose import Compose
from agreid.data.transforms.erasing import RandomErasing
from agreid.data.transforms.geometric import PadRandomCrop, RandomHorizontalFlip, Resize
from agreid.data.transforms.photometric import ColorJitter
from agreid.data.transforms.tensor import ToTensorNormalize, norm_stats


INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def build_transforms(cfg: Any, is_train: bool) -> Compose:
    """Resize → [flip → pad-crop → colour jitter] → normalise → [random erasing]; brackets only when training.

    The output is already normalised with ``INPUT.NORM`` statistics, so the model must not normalise again.
    """
    inp = cfg.INPUT
    mean, std = norm_stats(inp.NORM)
    if not is_train:
        return Compose([Resize(inp.SIZE_TEST), ToTensorNormalize(mean, std)])
    if inp.INTERPOLATION_TRAIN not in INTERPOLATIONS:
        raise ConfigError(f"INPUT.INTERPOLATION_TRAIN must be one of {', '.join(INTERPOLATIONS)}, "
                          f"got '{inp.INTERPOLATION_TRAIN}'")
    steps: List[Any] = [Resize(inp.SIZE_TRAIN, INTERPOLATIONS[inp.INTERPOLATION_TRAIN])]
    if inp.FLIP.ENABLED:
        steps.append(RandomHorizontalFlip(inp.FLIP.PROB))
    if inp.PADDING.ENABLED and inp.PADDING.SIZE > 0:
        steps.append(PadRandomCrop(inp.PADDING.SIZE))
    if inp.CJ.ENABLED:
        steps.append(ColorJitter(inp.CJ.PROB, inp.CJ.BRIGHTNESS, inp.CJ.CONTRAST, inp.CJ.SATURATION, inp.CJ.HUE))
    steps.append(ToTensorNormalize(mean, std))
    if inp.REA.ENABLED:
        steps.append(RandomErasing(inp.REA.PROB, fill=inp.REA.FILL))
    return Compose(steps)
