"""Sweeps on the W&B server: register a sweep file, run an agent that takes runs from it.

Both need a W&B account and the network; they fail at once, with what to do instead, when
W&B is set offline or its server cannot be reached (W&B itself would retry for minutes).
The agent runs the sweep's command (``tools/fit.py ... ${args_no_hyphens}``) in the working
directory, so it is started from the repository root, where the command's paths point.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from osteo.sweeps.spec import SweepError, SweepSpec

__all__ = ["require_wandb_server", "create_sweep", "run_agent"]

DEFAULT_BASE_URL = "https://api.wandb.ai"
_OFFLINE_MODES = ("offline", "disabled", "dryrun")


def require_wandb_server(what: str, timeout: float = 5.0) -> None:
    """Fail with a clear message unless W&B is online and its server answers."""
    local = "run the grid without a server instead: tools/sweep.py local FILE"
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in _OFFLINE_MODES:
        raise SweepError(
            f"{what} needs the W&B server, but WANDB_MODE={mode}. Unset it and log in "
            f"(`wandb login`), or {local}"
        )
    base_url = os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)
    parsed = urlparse(base_url)
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise SweepError(
            f"{what} needs the W&B server, which cannot be reached at {base_url} ({err}). "
            f"Check the network (or WANDB_BASE_URL for a private server), or {local}"
        ) from None


def create_sweep(spec: SweepSpec, project: str, entity: str | None = None) -> str:
    """Register the sweep with W&B; returns its id (``entity/project/id`` for the agent)."""
    require_wandb_server("Creating a sweep")
    import wandb

    try:
        sweep_id = wandb.sweep(sweep=spec.raw, project=project, entity=entity)
    except Exception as err:  # noqa: BLE001 - W&B raises many types; all mean the same here
        raise SweepError(
            f"W&B did not register {spec.where}: {err}. A sweep needs a W&B account: run "
            "`wandb login` (or set WANDB_API_KEY)"
        ) from None
    return sweep_id


def run_agent(
    sweep_id: str,
    count: int | None = None,
    project: str | None = None,
    entity: str | None = None,
    program: str = "tools/fit.py",
) -> None:
    """Take runs from the sweep and run its command here until it ends (or ``count`` runs)."""
    if not Path(program).is_file():
        raise SweepError(
            f"Start the agent from the repository root: the sweep's command runs {program} "
            f"relative to the working directory ({Path.cwd()})"
        )
    require_wandb_server("A sweep agent")
    import wandb

    try:
        wandb.agent(sweep_id, count=count, project=project, entity=entity)
    except Exception as err:  # noqa: BLE001
        raise SweepError(f"the W&B agent stopped: {err}") from None
