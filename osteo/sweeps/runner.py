"""``tools/sweep.py local``: check, run, compare and aggregate a sweep on this machine.

Layout of the output folder (``--out``, default ``<output_dir>/sweeps/<sweep name>``)::

    <run name>/          one run folder per parameter set (config.yaml, predictions.csv, ...)
    logs/<run name>.log  each run's console output
    summary/             comparison.md/.csv and ROC plots (tools/compare.py's table over the
                         runs), runs.csv, seed_aggregate.md/.csv (mean and SD over seeds)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from osteo.config import load_config
from osteo.sweeps.aggregate import write_aggregate
from osteo.sweeps.local import RunOutcome, fit_command, run_environment, run_plans
from osteo.sweeps.plan import RunPlan, plan_runs
from osteo.sweeps.spec import SweepError, SweepSpec, resolve_path

__all__ = ["LocalSweepResult", "PreparedSweep", "prepare_local_sweep", "run_local_sweep"]


@dataclass
class LocalSweepResult:
    out_dir: Path
    plans: list[RunPlan]
    outcomes: list[RunOutcome] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    comparison_markdown: str = ""
    aggregate_markdown: str = ""
    comparison_error: str | None = None

    @property
    def n_failed(self) -> int:
        return sum(not o.ok for o in self.outcomes)


@dataclass
class PreparedSweep:
    spec: SweepSpec
    config: Path
    program: Path
    out_dir: Path
    plans: list[RunPlan]
    commands: dict[str, list[str]]
    logger_mode_given: bool


def prepare_local_sweep(
    spec: SweepSpec,
    extra_overrides: list[str] | None = None,
    only: dict[str, list[str]] | None = None,
    max_runs: int | None = None,
    sample_seed: int = 0,
    out_dir: Path | None = None,
) -> PreparedSweep:
    """Every run planned and its config validated; nothing written yet."""
    config = resolve_path(spec.config)
    if not config.is_file():
        raise SweepError(f"{spec.where}: the command's config {spec.config} does not exist")
    program = resolve_path(spec.program)
    extra = list(extra_overrides or [])
    plans = plan_runs(spec, config, extra, only, max_runs, sample_seed)
    if not plans:
        raise SweepError(f"{spec.where}: no runs to make")
    if out_dir is None:
        base = load_config(config, [*spec.command_overrides, *extra])
        out_dir = Path(base.output_dir) / "sweeps" / spec.name
    out_dir = Path(out_dir).resolve()
    logger_mode_given = any(o.startswith("logger.mode=") for o in extra)
    # Each run logs to W&B offline unless the caller chose a mode (last override wins).
    mode = [] if logger_mode_given else ["logger.mode=offline"]
    commands = {p.name: [*fit_command(program, config, p, out_dir), *mode] for p in plans}
    return PreparedSweep(spec, config, program, out_dir, plans, commands, logger_mode_given)


def _compare(outcomes: list[RunOutcome], out: Path, readers: Path | None):
    from osteo.evaluation.comparison import PrimaryNotFoundError, compare_runs, model_key
    from osteo.evaluation.runs import EvaluationInputError, load_run

    done = [o.run_dir for o in outcomes if o.ok and (o.run_dir / "predictions.csv").is_file()]
    if not done:
        return None, "no run finished with predictions"
    try:
        try:
            return compare_runs(done, readers, out), None
        except PrimaryNotFoundError:
            # A sweep without the configured primary (e.g. --only a subset of heads) compares
            # against its first planned run's model: fixed by the plan, not by the results.
            primary = model_key(load_run(done[0]))
            return compare_runs(done, readers, out, primary=primary), None
    except EvaluationInputError as err:
        return None, str(err)


def run_local_sweep(
    prepared: PreparedSweep,
    parallel: int = 1,
    readers: Path | None = None,
    echo: Callable[[str], None] = print,
) -> LocalSweepResult:
    """Run the prepared sweep, then write the comparison and the seed aggregate."""
    result = LocalSweepResult(prepared.out_dir, prepared.plans)
    echo(
        f"sweep {prepared.spec.name}: {len(prepared.plans)} runs, {parallel} at a time, "
        f"into {prepared.out_dir}"
    )
    env = run_environment(parallel, prepared.logger_mode_given)
    result.outcomes = run_plans(
        prepared.plans, prepared.commands, prepared.out_dir, parallel, env, echo=echo
    )
    summary = prepared.out_dir / "summary"
    # Fixed parameters (one value, such as logger.mode) do not tell runs apart; a swept key
    # narrowed to one value by --only still labels the rows.
    swept = [k for k, p in prepared.spec.parameters.items() if p.varies]
    swept = swept or list(prepared.spec.parameters)
    comparison, error = _compare(result.outcomes, summary, readers)
    if comparison is not None:
        result.comparison_markdown = comparison.markdown
        result.files.update(comparison.files)
    result.comparison_error = error
    files, result.aggregate_markdown = write_aggregate(
        result.outcomes, swept, summary, prepared.spec.name
    )
    result.files.update(files)
    return result
