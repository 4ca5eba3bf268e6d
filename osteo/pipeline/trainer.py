"""One way to build a Lightning Trainer from the config, for every training stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

__all__ = [
    "build_trainer",
    "is_global_zero",
    "finish_distributed",
    "distributed_rank_and_size",
    "wait_for_all_ranks",
]


def _devices(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if not isinstance(value, int | str):
        return list(OmegaConf.to_container(value)) if OmegaConf.is_config(value) else list(value)
    return value


def build_trainer(
    trainer_cfg: DictConfig,
    max_epochs: int,
    root_dir: Path,
    callbacks: list | None = None,
    logger: Any = False,
    **overrides: Any,
) -> L.Trainer:
    kwargs = dict(
        accelerator=trainer_cfg.accelerator,
        devices=_devices(trainer_cfg.devices),
        num_nodes=trainer_cfg.num_nodes,
        strategy=trainer_cfg.strategy,
        precision=trainer_cfg.precision,
        deterministic=trainer_cfg.deterministic,
        log_every_n_steps=trainer_cfg.log_every_n_steps,
        enable_progress_bar=trainer_cfg.enable_progress_bar,
        enable_model_summary=False,
        max_epochs=max_epochs,
        default_root_dir=str(root_dir),
        callbacks=callbacks or [],
        logger=logger,
    )
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def is_global_zero() -> bool:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return True


def finish_distributed() -> None:
    """Tear the process group down after the last collective call.

    With torch >= 2.x a gloo/nccl group left alive at interpreter exit can abort the process
    (exit code 134) under ``strategy=ddp``; destroying it explicitly exits cleanly.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def distributed_rank_and_size() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def wait_for_all_ranks() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
