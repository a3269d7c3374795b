"""Image decoding to H×W×3 uint8 RGB arrays, with one clear error for any unreadable file."""
from __future__ import annotations

import os
import re
from typing import Optional

from agreid.data.opencv import cv2
import numpy as np
from PIL import Image

from agreid.data.records import DatasetError

DECODERS = ("opencv", "pil")


class CorruptImageError(DatasetError):
    """An image file is missing, unreadable or cannot be decoded; ``path`` names the file.

    ``message=`` is how a DataLoader worker's error is rebuilt in the main process (torch passes the
    formatted worker traceback); ``path`` is then recovered from that text.
    """

    message = "an image file cannot be read"

    def __init__(self, path: str = "", reason: str = "cannot be decoded", message: Optional[str] = None) -> None:
        if message is not None:
            found = re.findall(r"Image '(.+?)' ", message)
            path = found[-1] if found else path
        super().__init__(message if message is not None else f"Image '{path}' {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.path, self.reason, str(self))


def _read_opencv(path: str) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise CorruptImageError(path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read_pil(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_image(path: str, decoder: str = "opencv") -> np.ndarray:
    """Decode ``path`` to an H×W×3 uint8 RGB array with ``decoder`` ("opencv" or "pil").

    Any failure (missing file, permission, truncated or garbage data) raises :class:`CorruptImageError`.
    """
    if decoder not in DECODERS:
        raise ValueError(f"Unknown image decoder '{decoder}'; choose one of {', '.join(DECODERS)}")
    if not os.path.isfile(path):
        raise CorruptImageError(path, "does not exist or is not a file")
    try:
        img = _read_opencv(path) if decoder == "opencv" else _read_pil(path)
    except CorruptImageError:
        raise
    except (OSError, ValueError, SyntaxError, cv2.error, Image.DecompressionBombError) as exc:
        raise CorruptImageError(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise CorruptImageError(path, f"decoded to an unexpected shape {img.shape}")
    return img
