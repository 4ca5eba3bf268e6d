"""The runs of a sweep: the grid (or random draws), each checked against the config schema.

Nothing runs until every run's config has been built with ``load_config`` and passed
``check_config``: a typo in a swept key (``model.haed``) or a value outside its choices
(``model.head: bones``) stops the sweep at once, naming the key and what is valid, instead of
failing, or silently sweeping nothing, fifteen runs later.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from osteo.config import ConfigError, load_config
from osteo.sweeps.naming import name_from_overrides, split_override
from osteo.sweeps.spec import LOCAL_DISTRIBUTIONS, Parameter, SweepError, SweepSpec

__all__ = [
    "RunPlan",
    "format_value",
    "check_parameter_keys",
    "plan_runs",
    "BAYES_NEEDS_SERVER",
]

BAYES_NEEDS_SERVER = (
    "method {method} chooses each run from the results of the previous ones, which needs the "
    "W&B server: register it with `tools/sweep.py create {file}` and start "
    "`tools/sweep.py agent SWEEP_ID`. To try its search space without a server, draw runs at "
    "random with `--max-runs N`."
)
# Keys the local runner sets itself.
RESERVED_KEYS = {"name": "run names come from the parameters", "output_dir": "use --out DIR"}


@dataclass(frozen=True)
class RunPlan:
    """One run of a sweep: its name, its swept values and every override fit.py gets."""

    index: int
    name: str
    params: dict[str, Any]
    overrides: list[str]


def format_value(value: Any) -> str:
    """A value as a key=value override: W&B's ``str(value)``, except null for None."""
    return "null" if value is None else str(value)


def _load(config: Path, overrides: list[str], what: str, spec: SweepSpec):
    """The run's config: keys, types and fixed choices checked against the schema."""
    try:
        return load_config(config, overrides)
    except ConfigError as err:
        raise SweepError(f"{spec.where}: {what}: {err}") from None


def _check_registries(cfg, what: str, spec: SweepSpec) -> None:
    """Heads and backbones, checked against the model registries (imports the pipeline)."""
    from osteo.pipeline.runner import check_config

    try:
        check_config(cfg)
    except ConfigError as err:
        raise SweepError(f"{spec.where}: {what}: {err}") from None


def _check(config: Path, overrides: list[str], what: str, spec: SweepSpec) -> None:
    _check_registries(_load(config, overrides, what, spec), what, spec)


def check_parameter_keys(spec: SweepSpec, config: Path) -> None:
    """Every swept key, and each of its values, against the schema (one at a time, so the
    message names the parameter at fault). All keys go through the schema before the model
    registries are imported: a typo fails in a fraction of a second."""
    checks = [(f"command override '{o}'", [o]) for o in spec.command_overrides]
    for key, parameter in spec.parameters.items():
        for value in parameter.samples_to_check() or [None]:
            checks.append((f"parameter '{key}'", [f"{key}={format_value(value)}"]))
    loaded = [(what, _load(config, overrides, what, spec)) for what, overrides in checks]
    for what, cfg in loaded:
        _check_registries(cfg, what, spec)


def _restrict(spec: SweepSpec, only: dict[str, list[str]]) -> dict[str, Parameter]:
    """Keep the listed values of some parameters (``--only model.head=clinical,texture``)."""
    parameters = dict(spec.parameters)
    for key, wanted in only.items():
        parameter = parameters.get(key)
        if parameter is None or parameter.values is None:
            choices = [k for k, p in parameters.items() if p.values is not None]
            raise SweepError(
                f"--only {key}: not a parameter with listed values in {spec.where}; "
                f"those are {choices}"
            )
        chosen = [v for v in parameter.values if format_value(v) in wanted]
        missing = [w for w in wanted if w not in {format_value(v) for v in parameter.values}]
        if missing:
            raise SweepError(
                f"--only {key}: {missing} not among its values "
                f"{[format_value(v) for v in parameter.values]}"
            )
        parameters[key] = Parameter(key, values=tuple(chosen), fixed=len(chosen) == 1)
    return parameters


def _grid(parameters: dict[str, Parameter], spec: SweepSpec) -> list[dict[str, Any]]:
    ranged = [k for k, p in parameters.items() if p.values is None]
    if ranged:
        raise SweepError(
            f"{spec.where}: method grid needs listed values; {ranged} have ranges "
            "(use method random or bayes for those)"
        )
    keys = list(parameters)
    return [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(parameters[k].values for k in keys))
    ]


def _draw(parameter: Parameter, rng: np.random.Generator, spec: SweepSpec) -> Any:
    if parameter.values is not None:
        p = np.asarray(parameter.probabilities) if parameter.probabilities else None
        return parameter.values[int(rng.choice(len(parameter.values), p=p))]
    low, high = parameter.low, parameter.high
    if parameter.distribution == "uniform":
        return float(rng.uniform(low, high))
    if parameter.distribution == "int_uniform":
        return int(rng.integers(int(low), int(high) + 1))
    if parameter.distribution == "log_uniform_values":
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    raise SweepError(
        f"{spec.where}: parameter '{parameter.key}': distribution {parameter.distribution!r} "
        f"cannot be drawn locally (only {list(LOCAL_DISTRIBUTIONS)}); use the W&B agent"
    )


def _random(
    parameters: dict[str, Parameter], n_runs: int, seed: int, spec: SweepSpec
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{k: _draw(p, rng, spec) for k, p in parameters.items()} for _ in range(n_runs)]


def _extra_overrides(
    extra: list[str], parameters: dict[str, Parameter], spec: SweepSpec
) -> list[str]:
    for override in extra:
        try:
            key, _ = split_override(override)
        except ValueError as err:
            raise SweepError(str(err)) from None
        if key in RESERVED_KEYS:
            raise SweepError(
                f"override '{override}': {key} is set by the sweep; {RESERVED_KEYS[key]}"
            )
        parameter = parameters.get(key)
        if parameter is not None and parameter.varies:
            raise SweepError(
                f"override '{override}': '{key}' is swept by {spec.where}; keep some of its "
                f"values with --only {key}=V1,V2 instead"
            )
    return list(extra)


def plan_runs(
    spec: SweepSpec,
    config: Path,
    extra_overrides: list[str] | None = None,
    only: dict[str, list[str]] | None = None,
    max_runs: int | None = None,
    sample_seed: int = 0,
) -> list[RunPlan]:
    """The runs of ``spec`` with ``extra_overrides`` applied to each, all validated.

    Extra overrides win over the sweep's fixed values (``value:``), e.g. ``logger.mode``;
    a swept key with several values cannot be overridden (``--only`` narrows it).
    """
    parameters = _restrict(spec, only or {})
    extra = _extra_overrides(list(extra_overrides or []), parameters, spec)
    for override in extra:
        _load(config, [override], f"override '{override}'", spec)
    check_parameter_keys(spec, config)
    if spec.method == "grid":
        combos = _grid(parameters, spec)
        if max_runs is not None:
            combos = combos[:max_runs]
    elif max_runs is None:
        raise SweepError(BAYES_NEEDS_SERVER.format(method=spec.method, file=spec.where))
    else:
        combos = _random(parameters, max_runs, sample_seed, spec)
    base = load_config(config, [*spec.command_overrides, *extra]).name
    plans, names = [], {}
    for index, params in enumerate(combos):
        swept = [f"{k}={format_value(v)}" for k, v in params.items()]
        # As fit.py --name-from-overrides would name it under a W&B agent.
        name = name_from_overrides(base, [*spec.command_overrides, *swept])
        if name in names:  # random draws can repeat a categorical-only space
            continue
        overrides = [*spec.command_overrides, *swept, *extra]
        _check(config, overrides, f"run {name}", spec)
        names[name] = index
        plans.append(RunPlan(len(plans), name, params, overrides))
    return plans
