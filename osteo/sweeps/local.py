"""Run a sweep's runs on this machine, K at a time, each a ``tools/fit.py`` process.

No W&B server is involved: each run logs to W&B offline in its run folder (``wandb sync``
uploads it later). The first run goes alone: it fills the caches every run shares (the
synthetic cohort, the segmentation model, masks, ROIs), which concurrent first runs would all
compute at once. If it fails, the sweep stops there, since the others share its set-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from osteo.sweeps.plan import RunPlan

__all__ = ["RunOutcome", "run_plans", "fit_command", "run_environment"]

# W&B variables an enclosing agent may have set; a local run must not join that sweep.
_AGENT_VARIABLES = ("WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH")


@dataclass
class RunOutcome:
    plan: RunPlan
    run_dir: Path
    log_path: Path
    returncode: int | None = None  # None: never started
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def fit_command(program: Path, config: Path, plan: RunPlan, out_dir: Path) -> list[str]:
    return [
        sys.executable,
        str(program),
        "--config",
        str(config),
        *plan.overrides,
        f"name={plan.name}",
        f"output_dir={out_dir}",
    ]


def run_environment(parallel: int, logger_mode_given: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _AGENT_VARIABLES}
    env.setdefault("WANDB_SILENT", "true")
    env.setdefault("MPLBACKEND", "Agg")
    if not logger_mode_given:
        env["WANDB_MODE"] = "offline"
    if parallel > 1 and "OMP_NUM_THREADS" not in env:
        # K runs with one thread per core each would oversubscribe the cores K times.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    return env


def _start(command: list[str], log_path: Path, env: dict[str, str], cwd: Path):
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed when the run ends
    log.write(" ".join(command) + "\n\n")
    log.flush()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    return process, log


def run_plans(
    plans: list[RunPlan],
    commands: dict[str, list[str]],
    out_dir: Path,
    parallel: int,
    env: dict[str, str],
    cwd: Path | None = None,
    echo: Callable[[str], None] = print,
) -> list[RunOutcome]:
    """Run every plan (``commands[plan.name]``); returns one outcome per plan, in order."""
    cwd = cwd or Path.cwd()
    outcomes = [RunOutcome(p, out_dir / p.name, out_dir / "logs" / f"{p.name}.log") for p in plans]
    pending = list(outcomes)
    running: list[tuple[RunOutcome, subprocess.Popen, object, float]] = []
    finished = 0
    first = True
    try:
        while pending or running:
            # The first run alone; then up to `parallel` at a time.
            limit = 1 if first else max(1, parallel)
            while pending and len(running) < limit:
                outcome = pending.pop(0)
                process, log = _start(commands[outcome.plan.name], outcome.log_path, env, cwd)
                running.append((outcome, process, log, time.perf_counter()))
            time.sleep(0.2)
            for item in list(running):
                outcome, process, log, started = item
                if process.poll() is None:
                    continue
                running.remove(item)
                log.close()
                outcome.returncode = process.returncode
                outcome.seconds = round(time.perf_counter() - started, 1)
                finished += 1
                status = "ok" if outcome.ok else f"FAILED (exit {outcome.returncode})"
                echo(
                    f"[{finished}/{len(plans)}] {outcome.plan.name}: {status} "
                    f"in {outcome.seconds:.0f} s (log: {outcome.log_path})"
                )
                if first and not outcome.ok and pending:
                    echo(
                        f"the first run failed; the other {len(pending)} share its set-up, so "
                        "the sweep stops here. Last lines of its log:\n" + _tail(outcome.log_path)
                    )
                    pending.clear()
            if first and not running:
                first = False
    except KeyboardInterrupt:
        for _, process, _, _ in running:
            process.terminate()
        for _, process, log, _ in running:
            process.wait(timeout=30)
            log.close()
        raise
    return outcomes


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(cannot read {path})"
