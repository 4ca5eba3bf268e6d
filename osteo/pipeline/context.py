"""What every stage shares: the run folder, the cache, stage records and content hashes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from osteo.files import write_json_atomic
from osteo.memory import peak_memory_mb
from osteo.pipeline.file_hashes import STORE_NAME, FileHashes
from osteo.versions import library_versions as _library_versions

__all__ = [
    "StageRecord",
    "RunContext",
    "RunFolderBusyError",
    "launched_as_rank_zero",
    "library_versions",
]

_VERSIONED = (
    "osteo",
    "torch",
    "lightning",
    "monai",
    "numpy",
    "SimpleITK",
    "pydicom",
    "pyradiomics-bhklab",
    "scikit-learn",
)


def library_versions() -> dict[str, str]:
    """The versions recorded in every run's ``stages.json``."""
    return _library_versions(_VERSIONED)


@dataclass
class StageRecord:
    name: str
    status: str = "pending"  # ran, reused, skipped, failed
    wall_s: float = 0.0
    cache_key: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    # Peak resident memory (MB) read when the stage ended: a high-water mark since the process
    # started (getrusage's ru_maxrss), so a stage shows a new figure only when it rose above
    # every earlier stage's peak. children: the largest peak of any child process this one has
    # waited for (not a sum), or of the workers a stage reports itself (radiomics: forkserver
    # workers are the forkserver's children, which getrusage does not see).
    peak_rss_mb: float | None = None
    children_peak_rss_mb: float | None = None


def launched_as_rank_zero() -> bool:
    """False in a process a launcher started as another rank, even before any process group
    exists: Lightning's DDP launcher reruns the command in child processes (LOCAL_RANK,
    NODE_RANK), torchrun and srun set RANK / SLURM_PROCID. Locks are for rank zero alone: a
    lock one rank holds while the others wait for it in a collective call never opens."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(os.environ.get(v, "0") in ("0", "") for v in ranks)


class RunFolderBusyError(RuntimeError):
    """Another live process holds the run folder (two runs with one ``name``)."""


def resolve_run_dir(cfg: DictConfig) -> Path:
    """``output_dir/name``, refusing a name that leads outside ``output_dir``."""
    from osteo.config import ConfigError, check_run_name

    check_run_name(str(cfg.name))
    output_dir = Path(cfg.output_dir).resolve()
    run_dir = (output_dir / str(cfg.name)).resolve()
    if run_dir.parent != output_dir:
        raise ConfigError(
            f"Invalid value for config key 'name': {cfg.name!r} resolves to {run_dir}, "
            f"outside output_dir {output_dir}"
        )
    return Path(cfg.output_dir) / str(cfg.name)


class RunContext:
    """The run folder (``output_dir/name``), the shared cache and the stage log.

    ``lock=True`` (rank zero of a run) holds ``<run folder>/.osteo.lock`` for the process's
    life: a second live run with the same ``name`` is refused instead of deleting this one's
    checkpoints. The lock is the operating system's (``filelock``), so a killed run leaves
    no stale lock behind.
    """

    LOCK_NAME = ".osteo.lock"

    def __init__(self, cfg: DictConfig, lock: bool | None = None) -> None:
        from osteo.privacy import IdentifierPolicy

        self.cfg = cfg
        self.run_dir = resolve_run_dir(cfg)
        self.cache_dir = Path(cfg.cache_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if lock is None:  # rank zero holds the folder for all ranks of its run
            from osteo.pipeline.distributed import is_global_zero

            lock = is_global_zero() and launched_as_rank_zero()
        self._lock = self._acquire(self.run_dir) if lock else None
        self.records: list[StageRecord] = []
        self.versions = library_versions()
        # How studies and patients are named in what this run writes (pseudonyms by default).
        self.identifiers = IdentifierPolicy(clear=bool(cfg.logger.log_identifiers))
        self.plan: tuple[str, ...] = ()  # the stage names in order, for "stage k of n"
        # The classifier settings (a ClassifierConfig) checked at start-up by the runner's
        # check_config; the classifier stage starts from them instead of checking them again.
        self.model_settings: Any = None
        # Content hashes of images and masks, read once per run and shared by every stage
        # (kept between runs in cache_dir/file_hashes.json; see file_hashes.py).
        self.hashes = FileHashes(
            self.cache_dir / STORE_NAME, progress=bool(cfg.trainer.enable_progress_bar)
        )

    @classmethod
    def _acquire(cls, run_dir: Path):
        from filelock import FileLock, Timeout

        lock = FileLock(str(run_dir / cls.LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunFolderBusyError(
                f"run folder {run_dir} is in use by another running osteo process; wait for "
                "it to finish or choose another name=..."
            ) from None
        return lock

    def close(self) -> None:
        """Release the run folder (also released by the OS when the process ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def write_study_table(
        self, table: Any, name: str, text_columns: tuple[str, ...] = ("reason",)
    ) -> Path:
        """Write a per-study table into the run folder: ``study_id`` as the run's public name
        (a pseudonym unless ``logger.log_identifiers``), identifiers redacted from the
        message columns, formula-leading cells neutralised, atomically."""
        from osteo.tables import write_csv

        out = table.copy()
        if "study_id" in out.columns:
            ids = out["study_id"].astype(str).tolist()
            for column in text_columns:
                if column in out.columns:
                    out[column] = [
                        self.identifiers.message(str(text), study)
                        for text, study in zip(out[column], ids, strict=True)
                    ]
            out["study_id"] = [self.identifiers.study(s) for s in ids]
        return write_csv(out, self.run_dir / name)

    def config_dict(self, *keys: str) -> dict[str, Any]:
        return {k: OmegaConf.to_container(self.cfg[k], resolve=True) for k in keys}

    @contextmanager
    def stage(self, name: str) -> Iterator[StageRecord]:
        record = StageRecord(name)
        self.records.append(record)
        position = self._position(name)
        self._say(f"[{position}] {name} ...")
        start = time.perf_counter()
        try:
            yield record
        except BaseException:
            record.status = "failed"
            raise
        finally:
            record.wall_s = round(time.perf_counter() - start, 2)
            record.peak_rss_mb, children = peak_memory_mb()
            if children is not None:  # a stage may have set its own workers' peak already
                record.children_peak_rss_mb = max(record.children_peak_rss_mb or 0.0, children)
            self.write_stages()
            self.hashes.save()
            memory = f", peak RSS {record.peak_rss_mb:.0f} MB" if record.peak_rss_mb else ""
            self._say(f"[{position}] {name}: {record.status} in {record.wall_s:.1f} s{memory}")

    def _position(self, name: str) -> str:
        if name in self.plan:
            return f"stage {self.plan.index(name) + 1} of {len(self.plan)}"
        return "stage"

    @staticmethod
    def _say(line: str) -> None:
        from osteo.pipeline.distributed import is_global_zero

        if is_global_zero():
            print(line, flush=True)

    def write_stages(self) -> None:
        from osteo.pipeline.distributed import is_global_zero

        if not is_global_zero():  # other DDP ranks hold no figures of their own to add
            return
        write_json_atomic(
            self.run_dir / "stages.json",
            {"versions": self.versions, "stages": {r.name: asdict(r) for r in self.records}},
        )
