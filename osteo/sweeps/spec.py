"""Read a W&B sweep file (configs/sweeps/*.yaml) into a checked description.

The file is W&B's own format, so ``wandb sweep FILE`` and ``tools/sweep.py create FILE`` accept
it as is. osteo adds two rules of its own, checked here: every parameter is a config key of
osteo (dotted, e.g. ``model.head``; checked against the schema in :mod:`osteo.sweeps.plan`),
and the command passes the parameters to ``tools/fit.py`` as ``key=value`` overrides, which is
W&B's ``${args_no_hyphens}`` macro (``${args}`` would give ``--key=value``, which fit.py
does not take).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osteo.config import read_yaml_file

__all__ = [
    "SweepError",
    "Parameter",
    "SweepSpec",
    "load_sweep",
    "sweep_from_dict",
    "resolve_path",
    "PROJECT_ROOT",
    "ARGS_MACRO",
    "NAME_FLAG",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARGS_MACRO = "${args_no_hyphens}"
# tools/fit.py names the run from its overrides, so runs of one sweep get their own folders.
NAME_FLAG = "--name-from-overrides"
METHODS = ("grid", "random", "bayes")
# Distributions the local runner can sample (W&B's names); others need the W&B server.
LOCAL_DISTRIBUTIONS = ("uniform", "int_uniform", "log_uniform_values", "categorical", "constant")
# Words of a command that start the program, not arguments to it.
_LAUNCH_TOKENS = ("${env}", "${interpreter}", "${program}", "python", "python3")


class SweepError(ValueError):
    """A sweep file, a sweep option or a sweep run is wrong; the message says how to fix it."""


@dataclass(frozen=True)
class Parameter:
    """One swept config key, as W&B describes it.

    ``values`` holds the choices of a ``values:`` list (or the one ``value:``);
    ``distribution`` with ``low``/``high`` a range. ``fixed`` marks a single ``value:``.
    """

    key: str
    values: tuple[Any, ...] | None = None
    distribution: str | None = None
    low: float | None = None
    high: float | None = None
    probabilities: tuple[float, ...] | None = None
    fixed: bool = False

    @property
    def varies(self) -> bool:
        return self.values is None or len(self.values) > 1

    def samples_to_check(self) -> list[Any]:
        """Values that stand for the parameter when its key and type are checked."""
        if self.values is not None:
            return list(self.values)
        return [v for v in (self.low, self.high) if v is not None]


@dataclass
class SweepSpec:
    """A sweep file: method, parameters, and the parts of its command osteo needs."""

    path: Path | None
    name: str
    method: str
    parameters: dict[str, Parameter]
    program: str
    config: str  # the --config file of the command, as written there
    command_overrides: list[str]  # literal key=value words of the command
    metric: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # what W&B gets

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else "the sweep"


def _parameter(key: Any, spec: Any, where: str) -> Parameter:
    if not isinstance(key, str) or not key:
        raise SweepError(f"{where}: parameter names must be config keys, got {key!r}")
    if not isinstance(spec, dict):
        raise SweepError(
            f"{where}: parameter '{key}' must be a mapping such as {{values: [...]}} or "
            f"{{distribution: uniform, min: 0, max: 1}}, got {spec!r}"
        )
    if "parameters" in spec:
        raise SweepError(
            f"{where}: parameter '{key}' nests parameters; name the full config key instead "
            "(e.g. 'model.lr', not model: {parameters: {lr: ...}})"
        )
    if "value" in spec:
        return Parameter(key, values=(spec["value"],), fixed=True)
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where}: parameter '{key}': 'values' must be a non-empty list")
        probabilities = spec.get("probabilities")
        if probabilities is not None and len(probabilities) != len(values):
            raise SweepError(
                f"{where}: parameter '{key}': {len(probabilities)} probabilities for "
                f"{len(values)} values"
            )
        return Parameter(
            key,
            values=tuple(values),
            probabilities=tuple(float(p) for p in probabilities) if probabilities else None,
        )
    if "min" in spec and "max" in spec:
        low, high = spec["min"], spec["max"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise SweepError(f"{where}: parameter '{key}': min and max must be numbers")
        if low >= high:
            raise SweepError(f"{where}: parameter '{key}': min {low} must be below max {high}")
        # W&B's default: integers when both bounds are integers, else uniform floats.
        default = "int_uniform" if isinstance(low, int) and isinstance(high, int) else "uniform"
        distribution = spec.get("distribution", default)
        if distribution.startswith("log_uniform_values") and low <= 0:
            raise SweepError(f"{where}: parameter '{key}': {distribution} needs min > 0")
        return Parameter(key, distribution=distribution, low=low, high=high)
    if "distribution" in spec:
        return Parameter(key, distribution=spec["distribution"])
    raise SweepError(
        f"{where}: parameter '{key}' needs 'value', 'values', or 'min' and 'max' "
        f"(got {sorted(spec)})"
    )


def _command_parts(command: Any, where: str) -> tuple[str, list[str]]:
    """The --config file and the literal key=value words of a sweep's command."""
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise SweepError(f"{where}: 'command' must be a list of words")
    if ARGS_MACRO not in command:
        hint = " (${args} would give --key=value)" if "${args}" in command else ""
        raise SweepError(
            f"{where}: the command must pass the parameters as key=value overrides with "
            f"{ARGS_MACRO}{hint}; e.g. [${{env}}, ${{interpreter}}, ${{program}}, --config, "
            f"configs/fusion_all.yaml, {NAME_FLAG}, {ARGS_MACRO}]"
        )
    config, overrides = None, []
    words = iter(command)
    for word in words:
        if word == "--config":
            config = next(words, None)
        elif word.startswith("--config="):
            config = word.split("=", 1)[1]
        elif word in _LAUNCH_TOKENS or word in (ARGS_MACRO, NAME_FLAG):
            continue
        elif word.startswith("${"):
            raise SweepError(f"{where}: the command's macro {word} is not supported by osteo")
        elif "=" in word and not word.startswith("-"):
            overrides.append(word)
        elif word.endswith(".py"):
            continue  # the program written out instead of ${program}
        else:
            raise SweepError(f"{where}: the command's word {word!r} is not an option of fit.py")
    if not config:
        raise SweepError(f"{where}: the command must name the base config: --config FILE")
    return config, overrides


def sweep_from_dict(data: Any, path: Path | None = None) -> SweepSpec:
    """Check a sweep mapping (as W&B reads it) and describe it."""
    where = str(path) if path is not None else "the sweep"
    if not isinstance(data, dict):
        raise SweepError(f"{where}: a sweep file holds a mapping at the top")
    method = data.get("method")
    if method not in METHODS:
        raise SweepError(f"{where}: 'method' must be one of {list(METHODS)}, got {method!r}")
    parameters = data.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise SweepError(f"{where}: 'parameters' must map config keys to their values")
    program = data.get("program")
    if not isinstance(program, str) or not program.endswith("fit.py"):
        raise SweepError(f"{where}: 'program' must be tools/fit.py, got {program!r}")
    config, overrides = _command_parts(data.get("command"), where)
    metric = data.get("metric")
    if method == "bayes" and not (isinstance(metric, dict) and metric.get("name")):
        raise SweepError(f"{where}: method bayes needs a metric (e.g. name: val/auc)")
    default_name = path.stem if path is not None else "sweep"
    return SweepSpec(
        path=path,
        name=str(data.get("name") or default_name),
        method=method,
        parameters={k: _parameter(k, v, where) for k, v in parameters.items()},
        program=program,
        config=config,
        command_overrides=overrides,
        metric=metric,
        raw=data,
    )


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (YAML, loaded safely: it is data, never code)."""
    path = Path(path)
    return sweep_from_dict(read_yaml_file(path, SweepError, "Sweep file"), path)


def resolve_path(name: str, cwd: Path | None = None) -> Path:
    """A path of the sweep's command: as given from the working directory, else from the
    project root (where a W&B agent runs the command)."""
    path = Path(name)
    if path.is_absolute():
        return path
    here = (cwd or Path.cwd()) / path
    return here if here.exists() else PROJECT_ROOT / path
