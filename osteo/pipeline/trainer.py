"""One way to build a Lightning Trainer from the config, for every training stage."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

__all__ = [
    "build_trainer",
    "suppress_lightning_tips",
    "start_distributed",
    "is_global_zero",
    "finish_distributed",
    "distributed_rank_and_size",
    "wait_for_all_ranks",
    "gather_from_ranks",
]


def _devices(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if not isinstance(value, int | str):
        return list(OmegaConf.to_container(value)) if OmegaConf.is_config(value) else list(value)
    return value


class _NoAdvertisements(logging.Filter):
    """Drops Lightning's "Tip: ... try installing litlogger / litmodels" promotions.

    Lightning (>= 2.6) prints them through its rank-zero info logger at every Trainer
    construction and has no switch for them; every other info message passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("Tip:" in message and ("litlogger" in message or "litmodels" in message))


# lightning_utilities' rank_zero_info logs through whichever of these two modules was
# imported last, so the filter goes on both.
_RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


def suppress_lightning_tips() -> None:
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoAdvertisements) for f in logger.filters):
            logger.addFilter(_NoAdvertisements())


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
    suppress_lightning_tips()
    return L.Trainer(**kwargs)


# Ranks wait at a barrier while rank zero alone makes the synthetic cohort (minutes for the
# default preset, longer for "paper"); Lightning's 30-minute default would abort them.
DISTRIBUTED_TIMEOUT = timedelta(hours=2)

# The rank this process had when finish_distributed tore the group down, so that code running
# after the pipeline (the tool's summary print) still knows which process is rank zero.
_finished_rank: int | None = None


def _external_launcher():
    """The cluster environment of a launcher that starts every rank at once, or None.

    torchrun and SLURM's srun start all processes before any code runs, so the stages before
    training can split their work by rank. Lightning's own launcher (``strategy=ddp`` from a
    plain ``python`` command) starts the other ranks only inside ``Trainer.fit``: it is left
    to Lightning, as a process group made earlier would meet ranks that are not there yet.
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        return TorchElasticEnvironment()
    if SLURMEnvironment.detect():
        return SLURMEnvironment()
    return None


def _backend(accelerator: str) -> str | None:
    """The backend Lightning would pick for this accelerator (None: leave it to Lightning)."""
    if accelerator == "cpu":
        return "gloo"
    if accelerator in ("gpu", "cuda"):
        return "nccl"
    if accelerator == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    return None  # mps, tpu, ...: no multi-process support to prepare here


def start_distributed(trainer_cfg: DictConfig) -> bool:
    """Join the process group at start-up when torchrun or srun launched this process.

    Lightning would only create the group inside ``Trainer.fit``; creating it first (with the
    backend and addresses Lightning would use, which it then adopts as is) lets the stages
    before training know their rank: rank zero alone makes the synthetic cohort and writes the
    run folder's files, and mask prediction and radiomics extraction are split across ranks.
    Returns True when a group was created here.
    """
    if not torch.distributed.is_available() or torch.distributed.is_initialized():
        return False
    environment = _external_launcher()
    if environment is None or environment.world_size() < 2:
        return False
    backend = _backend(str(trainer_cfg.accelerator))
    if backend is None:
        return False
    os.environ["MASTER_ADDR"] = environment.main_address
    os.environ["MASTER_PORT"] = str(environment.main_port)
    if backend == "nccl":
        torch.cuda.set_device(environment.local_rank())
    torch.distributed.init_process_group(
        backend,
        rank=environment.global_rank(),
        world_size=environment.world_size(),
        timeout=DISTRIBUTED_TIMEOUT,
    )
    return True


def is_global_zero() -> bool:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    if _finished_rank is not None:
        return _finished_rank == 0
    return _launcher_rank_is_zero()


def _launcher_rank_is_zero() -> bool:
    """Rank zero by the environment, before any process group exists.

    Lightning's own launcher (``strategy=ddp`` from a plain ``python`` command) starts the
    other ranks as new runs of the same command with ``LOCAL_RANK=k`` (and ``NODE_RANK``)
    set; they run the stages before training again, and must not print the header and stage
    lines twice or rewrite the run folder's files. A plain run has neither variable.
    """
    if "RANK" in os.environ:
        return os.environ["RANK"] == "0"
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def finish_distributed(wait: bool = True) -> None:
    """Tear the process group down after the last collective call.

    With torch >= 2.x a gloo/nccl group left alive at interpreter exit can abort the process
    (exit code 134) under ``strategy=ddp``; destroying it explicitly exits cleanly. After an
    error, ``wait=False`` skips the final barrier: the other ranks may be inside another
    collective call and would never reach it, so this rank exits and the launcher (torchrun,
    ``srun --kill-on-bad-exit``) stops the rest.
    """
    global _finished_rank
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        _finished_rank = torch.distributed.get_rank()
        if wait:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def distributed_rank_and_size() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def wait_for_all_ranks() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def gather_from_ranks(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (a barrier too); ``[value]`` without a group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        values: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(values, value)
        return values
    return [value]
