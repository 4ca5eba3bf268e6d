"""What the benchmark scripts share: the machine's description, the table, the JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

if str(ROOT) not in sys.path:  # `python benchmarks/bench_x.py` from anywhere
    sys.path.insert(0, str(ROOT))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> float | None:
    """The 1-minute load average: on a shared machine, what else was running."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def environment() -> dict:
    """The machine and the libraries a figure was measured with."""
    import lightning
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "load_average_1min_at_start": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "platform": platform.platform(),
    }


def print_table(rows: Sequence[tuple[str, object]], title: str) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 16))
    for name, value in rows:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{name:<{width}}  {text:>12}")


def write_json(path: Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
    return path


def run_fit(config: Path, overrides: list[str], log: Path) -> float:
    """Run ``tools/fit.py --config config overrides`` (W&B offline, output to ``log``); its
    wall time in seconds. A failed run ends the benchmark with the log's last lines."""
    env = {**os.environ, "WANDB_SILENT": "true", "MPLBACKEND": "Agg", "WANDB_MODE": "offline"}
    command = [sys.executable, str(ROOT / "tools" / "fit.py"), "--config", str(config)]
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        code = subprocess.run(
            [*command, *overrides], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        ).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"fit.py failed (exit {code}); last lines of {log}:\n{tail}")
    return seconds


def run_cohort_folder(run: Path) -> Path:
    """The cohort folder a run read: its config's ``data.manifest`` when that file exists,
    else (a path redacted in config.yaml) the synthetic cohort's own folder for its
    ``data.synthetic`` settings."""
    from omegaconf import OmegaConf

    from osteo.config import synthetic_manifest_path

    cfg = OmegaConf.load(Path(run) / "config.yaml")
    manifest = Path(str(cfg.data.manifest))
    if not manifest.is_file():
        manifest = synthetic_manifest_path(cfg.data.synthetic.root, cfg.data.synthetic)
    return manifest.parent
