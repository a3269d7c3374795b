"""Training stages a method declares, for methods trained in several phases from one ``train_net.py`` call.

CLIP-ReID learns text prompts (stage "prompt") before fine-tuning the image encoder (stage "image"); MSP runs
the prompt stage once per view; TF-CLIP builds its CLIP-Memory before training. A meta-architecture declares
its phases by defining ``training_stages()``; the trainer (:mod:`agreid.engine.stages`) runs them in order,
each with its own optimizer, schedule, epochs and checkpoints, and ``--resume`` continues inside whichever
stage was interrupted. A model without ``training_stages`` trains in one stage named "train" with SOLVER.

The model side of the contract (see :class:`StagedModel`):

- ``training_stages() -> list[StageSpec]`` names the stages in order.
- ``begin_stage(name, ctx) -> iterable | None`` is called when a stage starts **and again on resume into
  it**. It sets ``requires_grad`` on the parameters the stage trains (only those reach the optimizer), computes
  what the stage needs (text features, cached image features, a memory bank, ...) and, for a
  ``data="custom"`` stage, returns the batches (see :meth:`StageContext.tensor_loader`). State that later
  stages need must live in the model's ``state_dict`` (buffers), so a resumed run finds it in the checkpoint.
- In train mode ``model(batch)`` returns the loss dict of the current stage (``self.stage`` is set by the
  trainer through :func:`set_stage`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

STAGE_DATA = ("images", "custom")


@dataclass(frozen=True)
class StageSpec:
    """One training phase.

    ``name``: unique, used in logs, checkpoint file names and resume. ``solver``: the config node under
    SOLVER whose keys override SOLVER's for this stage (``"STAGE1"`` reads SOLVER.STAGE1.*); ``""`` uses SOLVER
    itself. ``data``: ``"images"`` trains on the usual training loader (DATALOADER / INPUT / the stage's
    IMS_PER_BATCH); ``"custom"`` on the batches ``begin_stage`` returns. ``epochs``: None takes the stage
    solver's MAX_EPOCH; 0 makes a preparation-only stage (``begin_stage`` runs, its result is checkpointed).
    ``records``: optional filter on training records (MSP's per-view prompt stages), applied before the loader
    and the context are built.
    """

    name: str
    solver: str = ""
    data: str = "images"
    epochs: Optional[int] = None
    records: Optional[Callable[[Any], bool]] = None

    def __post_init__(self) -> None:
        if self.data not in STAGE_DATA:
            raise ValueError(f"StageSpec.data must be one of {STAGE_DATA}, got {self.data!r}")


class StageContext(Protocol):
    """What the trainer offers a model in ``begin_stage`` (implemented in :mod:`agreid.engine.stages`)."""

    device: torch.device
    train_records: Sequence[Any]  # the stage's training records (after StageSpec.records)
    batch_size: int  # the stage's global IMS_PER_BATCH divided by the number of processes
    seed: int  # SEED (0 when random), for anything the stage draws
    test_transform: Callable[..., Any]  # INPUT's test transforms, for models that build their own loaders
    decoder: str  # INPUT.DECODER
    num_workers: int  # DATALOADER.NUM_WORKERS
    test_batch_size: int  # TEST.IMS_PER_BATCH
    seq_len: int  # INPUT.SEQ_LEN (video)

    def inference_loader(self, records: Sequence[Any]) -> Iterable[Dict[str, Any]]:
        """Batches of ``records`` with the test transforms, in order, on this process (no sampler)."""

    def tensor_loader(self, tensors: Dict[str, torch.Tensor], batch_size: int,
                      shuffle: bool = True, drop_last: bool = False) -> Iterable[Dict[str, torch.Tensor]]:
        """Batches of rows of ``tensors`` (all of equal length), reshuffled per epoch from (SEED, epoch), so a
        resumed stage draws the same batches; ``len()`` is the number of batches."""

    def cached(self, key: str, compute: Callable[[], Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """``compute()``'s tensors, computed once per run: saved atomically under OUTPUT_DIR and read back when a
        resumed run asks for the same ``key`` again."""

    def progress(self, iterable: Iterable, desc: str, total: Optional[int] = None) -> Iterable:
        """``iterable`` with a progress bar on the main process."""


@runtime_checkable
class StagedModel(Protocol):
    def training_stages(self) -> List[StageSpec]: ...

    def begin_stage(self, name: str, ctx: StageContext) -> Optional[Iterable[Dict[str, Any]]]: ...


SINGLE_STAGE = StageSpec(name="train")


def model_stages(model: nn.Module) -> List[StageSpec]:
    """The stages ``model`` declares (unwrapping DDP), or the single default stage."""
    model = getattr(model, "module", model)
    stages = list(model.training_stages()) if hasattr(model, "training_stages") else [SINGLE_STAGE]
    names = [s.name for s in stages]
    if not stages or len(set(names)) != len(names):
        raise ValueError(f"{type(model).__name__}.training_stages() must name distinct stages, got {names}")
    return stages


def set_stage(model: nn.Module, name: str) -> None:
    """Tell ``model`` (and a DDP wrapper's module) which stage's losses to return."""
    getattr(model, "module", model).stage = name


def freeze_all_but(model: nn.Module, trainable: Callable[[str], bool]) -> int:
    """Set ``requires_grad`` on the parameters whose name passes ``trainable``, clear it elsewhere; returns the
    number of trainable elements (what the stage's optimizer will see)."""
    n = 0
    for name, p in model.named_parameters():
        p.requires_grad_(bool(trainable(name)))
        n += p.numel() if p.requires_grad else 0
    return n


__all__ = ["StageSpec", "StageContext", "StagedModel", "SINGLE_STAGE", "model_stages", "set_stage",
           "freeze_all_but", "STAGE_DATA"]
