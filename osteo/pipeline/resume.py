"""What a killed training needs to continue exactly where it stopped.

Two things Lightning does not do by itself (2.6):

- ``ModelCheckpoint(save_last=True)`` beside a monitored top-k only rewrites ``last.ckpt``
  when the monitored value improves, so after a kill the "last" checkpoint may be many epochs
  old. :func:`every_epoch_checkpoint` writes ``last.ckpt`` at the end of every epoch.
- Checkpoints hold the model, optimiser, scheduler and loop state but not the global random
  number generators, which drive shuffling, augmentation and dropout; a resumed run would draw
  other numbers than the uninterrupted one. :class:`RngStateCallback` stores them in every
  checkpoint and restores them on resume.

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

__all__ = ["RngStateCallback", "every_epoch_checkpoint", "LAST_CHECKPOINT"]

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


class RngStateCallback(Callback):
    """Save the torch (CPU and CUDA), numpy and Python RNG states with each checkpoint."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "RngStateCallback"

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, gauss = np.random.get_state()
        version, python_state, gauss_next = random.getstate()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": {
                "kind": str(kind),
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "position": int(position),
                "has_gauss": int(has_gauss),
                "gauss": float(gauss),
            },
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
        for loader in _dataloaders(trainer.train_dataloader):
            if getattr(loader, "generator", None) is None:
                torch.empty((), dtype=torch.int64).random_()


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
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["position"],
            n["has_gauss"],
            n["gauss"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
