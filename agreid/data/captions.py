"""SVPR-ReID's per-image texts: attribute captions, their CLIP tokens, attribute labels and SVPR view ids.

Opt-in per adapter with the option ``captions='svpr'`` (e.g. ``DATASETS.OPTIONS ("captions=svpr",)``). Each
record then gets ``extras["caption"]`` (the text) and ``extras["batch_fields"]`` holding, for every loader item:

- ``captions``: int64 (L,) CLIP token ids of the caption, L = ``caption_length`` (SVPR ``TEXT_LEN`` 100);
- ``attribute_labels``: int64 (A,) class index of each attribute in ``ReIDDataset.attribute_classes`` order,
  -1 where unknown (test images of AG-ReID, identities without an annotation); A = 0 for CARGO;
- ``svpr_views``: SVPR's view label (ground 0 / aerial 1; AG-ReID.v2: CCTV 0, wearable 1, UAV 2).

The texts are SVPR-ReID's (``datasets/cp2108.py``, ``agreid*.py``, ``cargo.py``): "A photo of a X X X X  person
with the following attributes: Name is value, ...." for training and "A photo of a X X X X  person." (plus a
dataset note) for testing. The double space comes from the reference's ``'X ' * 4`` prompt and is kept;
the tokenizer collapses it. Datasets with different attribute sets (different A) cannot share a batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from agreid.data.records import AERIAL, BATCH_EXTRAS, CCTV, GROUND, WEARABLE, ImageRecord

CAPTION_STYLES = ("none", "svpr")
SVPR_CONTEXT_LENGTH = 100
SVPR_NUM_PROMPTS = 4
UNKNOWN_LABEL = -1
SVPR_VIEW_IDS: Mapping[str, int] = {GROUND: 0, AERIAL: 1}
"""SVPR's view label for CP2108, CARGO and AG-ReID (camera C3 is ground there)."""
SVPR_V2_VIEW_IDS: Mapping[str, int] = {CCTV: 0, WEARABLE: 1, AERIAL: 2}
"""SVPR's view label for AG-ReID.v2 (``datasets/agreidv2.py``: C3 → 0, C2 → 1, C0 → 2)."""
NOTE_UNKNOWN = " Attributes are unknown."
"""Test-caption note of SVPR's AG-ReID and AG-ReID.v2 loaders."""
NOTE_NOT_AVAILABLE = " Attributes are not available."
"""Caption note of SVPR's CARGO loader, used for train and test images alike."""


@dataclass(frozen=True)
class CaptionOptions:
    """How SVPR captions are written and tokenised: ``num_prompts`` "X" slots (learnable-prompt positions), ``context_length`` tokens."""

    context_length: int = SVPR_CONTEXT_LENGTH
    num_prompts: int = SVPR_NUM_PROMPTS

    @property
    def prompt(self) -> str:
        """The learnable-prompt slot words, written as the reference writes them ("X X X X ")."""
        return "X " * self.num_prompts

    def train_caption(self, attribute_text: str) -> str:
        """The training caption of an identity whose attributes read ``attribute_text``."""
        return f"A photo of a {self.prompt} person with the following attributes: {attribute_text}"

    def test_caption(self, note: str = "") -> str:
        """The fixed caption of test images (and of every CARGO image); ``note`` follows the full stop."""
        return f"A photo of a {self.prompt} person.{note}"

    def view_caption(self) -> str:
        """SVPR's view template (``ViewPromptBuilder``); the last X becomes "ground" or "aerial" in the model."""
        return f"A photo of a {self.prompt} person from X view."


def caption_options(style: Any, context_length: Any, num_prompts: Any, dataset: str) -> Optional[CaptionOptions]:
    """Validate an adapter's ``captions`` / ``caption_length`` / ``caption_prompts`` options; None means off."""
    style = str(style).strip().lower() if style is not None else "none"
    if style not in CAPTION_STYLES:
        raise ValueError(f"{dataset}: option captions must be one of {', '.join(CAPTION_STYLES)}, got {style!r}")
    if style == "none":
        return None
    for name, value, low in (("caption_length", context_length, 3), ("caption_prompts", num_prompts, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{dataset}: option {name} must be an integer >= {low}, got {value!r}")
    return CaptionOptions(context_length=context_length, num_prompts=num_prompts)


def attribute_sentence(pairs: Iterable[Tuple[str, Any]]) -> str:
    """ "Name is value, Other_name is value." as SVPR writes attributes: spaces in names become underscores."""
    return ", ".join(f"{name.replace(' ', '_')} is {value}" for name, value in pairs) + "."


class CaptionTokenizer:
    """open_clip's CLIP BPE tokenizer at a fixed context length, caching one read-only array per distinct text.

    Token ids equal SVPR's ``utils/simple_tokenizer.tokenize`` (same vocabulary ids, cleaning and truncation:
    a text longer than the context keeps its first L-1 tokens and ends with the end-of-text token). The one
    difference: SVPR's vocabulary drops the last BPE merge ("jekyll"), on which the reference fails.
    """

    def __init__(self, context_length: int = SVPR_CONTEXT_LENGTH) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self.context_length = context_length
        self._tokenizer = SimpleTokenizer(context_length=context_length)
        self._cache: Dict[str, np.ndarray] = {}

    def __call__(self, text: str) -> np.ndarray:
        tokens = self._cache.get(text)
        if tokens is None:
            tokens = self._tokenizer([text], context_length=self.context_length)[0].numpy().astype(np.int64)
            tokens.setflags(write=False)
            self._cache[text] = tokens
        return tokens


@lru_cache(maxsize=None)
def shared_tokenizer(context_length: int) -> CaptionTokenizer:
    """One tokenizer (and text cache) per context length for the whole process."""
    return CaptionTokenizer(context_length)


def label_array(labels: Optional[Sequence[int]], num_attributes: int) -> np.ndarray:
    """``labels`` as a read-only int64 (A,) array, or A times -1 when the image has no attribute labels."""
    if labels is None:
        return _unknown_labels(num_attributes)
    out = np.asarray(labels, dtype=np.int64).reshape(-1)
    if out.shape[0] != num_attributes:
        raise ValueError(f"expected {num_attributes} attribute labels, got {out.shape[0]}")
    out.setflags(write=False)
    return out


@lru_cache(maxsize=None)
def _unknown_labels(num_attributes: int) -> np.ndarray:
    out = np.full(num_attributes, UNKNOWN_LABEL, dtype=np.int64)
    out.setflags(write=False)
    return out


def with_svpr_text(record: ImageRecord, caption: str, labels: Optional[Sequence[int]], num_attributes: int,
                   view_ids: Mapping[str, int], tokenizer: CaptionTokenizer) -> ImageRecord:
    """A copy of ``record`` with ``caption`` and the batch fields ``captions``, ``attribute_labels``, ``svpr_views``."""
    if record.view not in view_ids:
        raise ValueError(f"SVPR has no view label for view {record.view!r} of '{record.path}'")
    batch = {"captions": tokenizer(caption), "attribute_labels": label_array(labels, num_attributes),
             "svpr_views": int(view_ids[record.view])}
    extras = {**record.extras, "caption": caption,
              BATCH_EXTRAS: {**record.extras.get(BATCH_EXTRAS, {}), **batch}}
    return record.replace(extras=extras)
