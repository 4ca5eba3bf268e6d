"""What a killed training needs to continue exactly where it stopped.

Two things Lightning does not do by itself (2.6):

- ``ModelCheckpoint(save_last=True)`` beside a monitored top-k only rewrites ``last.ckpt``
  when the monitored value improves, so after a kill the "last" checkpoint may be many epochs
  old. :func:`every_epoch_checkpoint` writes ``last.ckpt`` at the end of every epoch.
- Checkpoints hold the model, optimiser, scheduler and loop state but not the global random
  number generators, which drive shuffling, augmentation and dropout; a resumed run would draw
  other numbers than the uninterrupted one. :class:`RngStateCallback` stores them in every
  checkpoint and restores them on resume.
- MONAI's random transforms draw from their own ``RandomState`` (seeded once, when MONAI's
  ``DataLoader`` is built), not from the global generators. :class:`TransformRngStateCallback`
  stores and restores those of the training data's transforms.

Everything stored is a tensor, a number or a string, so checkpoints keep loading with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader

__all__ = [
    "RngStateCallback",
    "TransformRngStateCallback",
    "every_epoch_checkpoint",
    "resumable_callbacks",
    "LAST_CHECKPOINT",
]

LAST_CHECKPOINT = "last"


def every_epoch_checkpoint(dirpath: Path) -> ModelCheckpoint:
    """``<dirpath>/last.ckpt`` rewritten (atomically, by Lightning) after every epoch."""
    return ModelCheckpoint(
        dirpath=dirpath,
        filename=LAST_CHECKPOINT,
        monitor=None,
        save_top_k=1,
        save_last=False,
        enable_version_counter=False,
        # At the end of the training epoch (after validation), like the monitored top-k
        # callback listed before it, so last.ckpt holds that callback's updated best.
        save_on_train_epoch_end=True,
    )


def resumable_callbacks(dirpath: Path, monitor: str) -> list[Callback]:
    """The checkpoint callbacks every osteo training uses, in this order.

    ``<dirpath>/best.ckpt`` keeps the epoch with the highest ``monitor``; ``last.ckpt`` is
    written after every epoch with the RNG states, so a killed training resumes where it stopped
    and ends as the uninterrupted one would. The best-checkpoint callback comes first: the
    every-epoch one, run after it, saves its updated best.
    """
    best = ModelCheckpoint(
        dirpath=dirpath,
        filename="best",
        monitor=monitor,
        mode="max",
        save_top_k=1,
        save_last=False,
    )
    return [best, every_epoch_checkpoint(dirpath), RngStateCallback()]


class RngStateCallback(Callback):
    """Save the torch (CPU and CUDA), numpy and Python RNG states with each checkpoint."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "RngStateCallback"

    def state_dict(self) -> dict[str, Any]:
        version, python_state, gauss_next = random.getstate()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": _random_state_to_tensors(np.random.get_state()),
            "python": {"version": version, "state": list(python_state), "gauss": gauss_next},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Applied at the next epoch start, not now: on resume Lightning first finishes the
        # interrupted epoch's bookkeeping and may validate again, drawing from the torch RNG
        # where the uninterrupted run drew nothing.
        self._pending = state_dict

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        state, self._pending = self._pending, None
        if state is None:
            return
        _set_rng_states(state)
        # Lightning creates the first epoch's data-loader iterator in FitLoop.setup_data(),
        # before this hook; every later epoch's iterator after it (_TrainingEpochLoop.
        # on_run_start). Creating an iterator draws one number from the global RNG (the
        # DataLoader's base seed), so the uninterrupted run made that draw after the state
        # saved here and the resumed run already made it before: make it again.
        # MONAI's DataLoader passes the global generator explicitly: the same draw.
        for loader in _dataloaders(trainer.train_dataloader):
            generator = getattr(loader, "generator", None)
            if generator is None or generator is torch.random.default_generator:
                torch.empty((), dtype=torch.int64).random_()


class TransformRngStateCallback(Callback):
    """Save and restore the ``RandomState`` of every MONAI random transform of the training
    data (segmentation augmentation), so a resumed run augments as the uninterrupted one."""

    KEY = "transform_rng_states"

    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[self.KEY] = [
            _random_state_to_tensors(rng.get_state())
            for rng in _transform_random_states(trainer.train_dataloader)
        ]

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(self.KEY)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        states, self._pending = self._pending, None
        if states is None:
            return
        generators = _transform_random_states(trainer.train_dataloader)
        if len(generators) != len(states):
            raise RuntimeError(
                f"the checkpoint holds {len(states)} random transform states but the training "
                f"data's transforms have {len(generators)}: it was written by another "
                "augmentation pipeline and cannot be resumed exactly"
            )
        for rng, state in zip(generators, states, strict=True):
            rng.set_state(_random_state_from_tensors(state))


def _transform_random_states(loaders) -> list[np.random.RandomState]:
    """Every ``RandomState`` reachable from the training datasets' transforms, in a fixed
    order. A dictionary transform often draws from an inner array transform's generator
    (``RandAffined`` -> ``RandAffine`` -> ``RandAffineGrid``), so the walk goes through the
    objects' attributes, as MONAI's own ``set_rnd`` does when it seeds them. (Not
    ``Compose.flatten()``: it builds a new ``Compose``, whose constructor reseeds every random
    transform from fresh entropy.)"""
    found: list[np.random.RandomState] = []
    seen: set[int] = set()

    def walk(obj, depth: int) -> None:
        if depth > 8 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.random.RandomState):
            found.append(obj)
        elif isinstance(obj, list | tuple):
            for item in obj:
                walk(item, depth + 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item, depth + 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, torch.Tensor | np.ndarray | type):
            for item in vars(obj).values():
                walk(item, depth + 1)

    for loader in _dataloaders(loaders):
        walk(getattr(getattr(loader, "dataset", None), "transform", None), 0)
    return found


def _random_state_to_tensors(state: tuple) -> dict[str, Any]:
    """A numpy ``RandomState.get_state()`` tuple as tensors and numbers (weights_only)."""
    kind, keys, position, has_gauss, gauss = state
    return {
        "kind": str(kind),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _random_state_from_tensors(n: dict[str, Any]) -> tuple:
    keys = n["keys"].numpy().astype(np.uint32)
    return (n["kind"], keys, n["position"], n["has_gauss"], n["gauss"])


def _dataloaders(loaders) -> list[DataLoader]:
    if isinstance(loaders, DataLoader):
        return [loaders]
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    if isinstance(loaders, list | tuple):
        return [d for item in loaders for d in _dataloaders(item)]
    return []


def _set_rng_states(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(_random_state_from_tensors(state["numpy"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
