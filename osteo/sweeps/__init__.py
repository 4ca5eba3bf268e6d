"""W&B sweeps over osteo's config: sweep files, run names, local runs, seed aggregates.

``load_sweep(path)`` reads a W&B sweep file (``configs/sweeps/*.yaml``);
``prepare_local_sweep`` plans its runs and validates every run's config against the schema
before anything runs; ``run_local_sweep`` runs them as ``tools/fit.py`` processes and writes
the comparison table and the mean and spread over seeds. ``create_sweep`` and ``run_agent``
use the W&B server instead. See README, "W&B sweeps".
"""

from osteo.sweeps.aggregate import aggregate_over_seeds, run_table, seed_keys
from osteo.sweeps.naming import name_from_overrides
from osteo.sweeps.plan import RunPlan, plan_runs
from osteo.sweeps.runner import LocalSweepResult, prepare_local_sweep, run_local_sweep
from osteo.sweeps.server import create_sweep, run_agent
from osteo.sweeps.spec import SweepError, SweepSpec, load_sweep, sweep_from_dict

__all__ = [
    "SweepError",
    "SweepSpec",
    "RunPlan",
    "LocalSweepResult",
    "load_sweep",
    "sweep_from_dict",
    "plan_runs",
    "name_from_overrides",
    "prepare_local_sweep",
    "run_local_sweep",
    "run_table",
    "aggregate_over_seeds",
    "seed_keys",
    "create_sweep",
    "run_agent",
]
