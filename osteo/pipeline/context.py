"""What every stage shares: the run folder, the cache, stage records and content hashes."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = [
    "StageRecord",
    "RunContext",
    "library_versions",
    "write_json_atomic",
    "write_text_atomic",
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
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def write_text_atomic(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json_atomic(path: Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@dataclass
class StageRecord:
    name: str
    status: str = "pending"  # ran, reused, skipped, failed
    wall_s: float = 0.0
    cache_key: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    note: str = ""


class RunContext:
    """The run folder (``output_dir/name``), the shared cache and the stage log."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.output_dir) / cfg.name
        self.cache_dir = Path(cfg.cache_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.records: list[StageRecord] = []
        self.versions = library_versions()
        self.plan: tuple[str, ...] = ()  # the stage names in order, for "stage k of n"

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
            self.write_stages()
            self._say(f"[{position}] {name}: {record.status} in {record.wall_s:.1f} s")

    def _position(self, name: str) -> str:
        if name in self.plan:
            return f"stage {self.plan.index(name) + 1} of {len(self.plan)}"
        return "stage"

    @staticmethod
    def _say(line: str) -> None:
        from osteo.pipeline.trainer import is_global_zero

        if is_global_zero():
            print(line, flush=True)

    def write_stages(self) -> None:
        from osteo.pipeline.trainer import is_global_zero

        if not is_global_zero():  # other DDP ranks hold no figures of their own to add
            return
        write_json_atomic(
            self.run_dir / "stages.json",
            {"versions": self.versions, "stages": {r.name: asdict(r) for r in self.records}},
        )
