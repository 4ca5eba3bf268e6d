"""The one Trainer factory (from the config's ``trainer`` section) and the distributed helpers:
joining the process group, ranks, barriers and gathering values across ranks."""

from __future__ import annotations

import inspect
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
    "trainer_options",
    "check_trainer_config",
    "training_key_options",
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


# Trainer arguments the stages set themselves: the config cannot override them.
_SET_BY_STAGES = ("callbacks", "logger", "max_epochs", "default_root_dir", "enable_model_summary")
# Settings that change what training computes: part of the training cache keys when they
# differ from their defaults (so keys made before these settings existed stay the same).
_CHANGE_RESULTS = {
    "gradient_clip_val": None,
    "gradient_clip_algorithm": None,
    "accumulate_grad_batches": 1,
    "limit_train_batches": None,
    "limit_val_batches": None,
    "fast_dev_run": False,
    "max_time": None,
    "benchmark": None,
}


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def trainer_options(trainer_cfg: DictConfig) -> dict[str, Any]:
    """The config's ``trainer`` section as ``lightning.Trainer`` keyword arguments.

    Settings left at None are left out (Lightning's own default applies); ``extra`` holds any
    other Trainer argument by name.
    """
    options = {key: _plain(trainer_cfg[key]) for key in trainer_cfg if key != "extra"}
    options["devices"] = _devices(trainer_cfg.devices)
    options.update(_plain(trainer_cfg.get("extra") or {}))
    return {key: value for key, value in options.items() if value is not None}


def check_trainer_config(trainer_cfg: DictConfig) -> None:
    """Every ``trainer`` setting must be a ``lightning.Trainer`` argument: checked at start-up,
    not when a stage builds its Trainer minutes later."""
    from osteo.config import ConfigError

    accepted = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    extra = trainer_cfg.get("extra") or {}
    # Every key of ``extra`` is checked, also one whose value is None ("{a:1}" parses as the
    # key "a:1" without a value) and which trainer_options would leave out.
    for key in sorted(set(trainer_options(trainer_cfg)) | {str(k) for k in extra}):
        where = f"trainer.extra.{key}" if key in extra else f"trainer.{key}"
        if key in _SET_BY_STAGES:
            raise ConfigError(f"Config key '{where}': the stages set {key!r} themselves")
        if key not in accepted:
            raise ConfigError(
                f"Unknown config key '{where}': not an argument of lightning.Trainer "
                f"(valid: {', '.join(sorted(accepted - set(_SET_BY_STAGES)))})"
            )
    algorithm = trainer_cfg.gradient_clip_algorithm
    if algorithm not in (None, "norm", "value"):
        raise ConfigError(
            f"Invalid value for config key 'trainer.gradient_clip_algorithm': {algorithm!r}; "
            "expected norm or value"
        )


def training_key_options(trainer_cfg: DictConfig) -> dict[str, Any]:
    """The trainer settings a training cache key hashes: precision, determinism, and every
    other setting that changes the result when it is not at its default."""
    options = {k: trainer_cfg[k] for k in ("precision", "deterministic")}
    for key, default in _CHANGE_RESULTS.items():
        value = _plain(trainer_cfg.get(key, default))
        if value != default:
            options[key] = value
    extra = _plain(trainer_cfg.get("extra") or {})
    if extra:
        options["extra"] = extra
    return options


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
    kwargs = trainer_options(trainer_cfg)
    kwargs.update(
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
