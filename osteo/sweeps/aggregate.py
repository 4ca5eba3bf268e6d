"""A sweep's results: one row per run, and the mean and spread over seeds of each setting.

A single seed's AUC on a test set of a few hundred radiographs moves by a few hundredths from
the initialisation alone; comparing fusion heads on one seed each can rank them by noise.
The aggregate groups runs that differ only in their seed and reports mean, standard deviation
(n - 1), min and max of the AUC per evaluated split.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from osteo.constants import TEST_SPLITS
from osteo.evaluation.formatting import markdown_table
from osteo.evaluation.report import SPLIT_TITLES
from osteo.files import write_text_atomic
from osteo.sweeps.local import RunOutcome
from osteo.sweeps.plan import format_value
from osteo.tables import neutralise_formulas

__all__ = [
    "SPLITS",
    "seed_keys",
    "run_table",
    "aggregate_over_seeds",
    "format_aggregate_markdown",
    "write_aggregate",
]

# Test splits first: the aggregate tables lead with the figures a paper reports.
SPLITS = (*TEST_SPLITS, "val")


def seed_keys(keys: Sequence[str]) -> list[str]:
    """Swept keys that are random seeds (``seed``, ``data.split.seed``, ...)."""
    return [k for k in keys if k == "seed" or k.endswith(".seed")]


def _aucs(run_dir: Path) -> dict[str, float]:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    return {
        f"{split}_auc": float(metrics[split]["auc"])
        for split in SPLITS
        if isinstance(metrics.get(split), dict) and metrics[split].get("auc") is not None
    }


def run_table(outcomes: Sequence[RunOutcome], keys: Sequence[str] | None = None) -> pd.DataFrame:
    """``name, status, exit_code, seconds, <swept keys...>, <split>_auc ...`` per run
    (``keys``: the swept keys to show, default all)."""
    rows = []
    for outcome in outcomes:
        row = {
            "name": outcome.plan.name,
            "status": "ok"
            if outcome.ok
            else ("not run" if outcome.returncode is None else "failed"),
            "exit_code": outcome.returncode,
            "seconds": outcome.seconds,
        }
        shown = outcome.plan.params if keys is None else {k: outcome.plan.params[k] for k in keys}
        row.update({k: format_value(v) for k, v in shown.items()})
        row.update(_aucs(outcome.run_dir) if outcome.ok else {})
        row["run_dir"] = str(outcome.run_dir)
        rows.append(row)
    table = pd.DataFrame(rows)
    for split in SPLITS:
        if f"{split}_auc" not in table.columns:
            table[f"{split}_auc"] = float("nan")
    return table


def aggregate_over_seeds(table: pd.DataFrame, swept: Sequence[str]) -> pd.DataFrame:
    """One row per setting of the non-seed swept keys (in the order the runs came):
    ``n_runs``, ``seeds``, and ``<split>_auc_mean``, ``_sd``, ``_min``, ``_max``.

    Failed runs are left out (``n_runs`` counts the ones that finished); an SD needs two.
    """
    seeds = seed_keys(swept)
    groups = [k for k in swept if k not in seeds]
    done = table[table["status"] == "ok"]
    rows = []
    grouped = done.groupby(groups, sort=False, dropna=False) if groups else [((), done)]
    for key, part in grouped:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(groups, key, strict=True))
        row["n_runs"] = len(part)
        row["seeds"] = (
            ", ".join(
                "/".join(str(v) for v in values)
                for values in part[seeds].itertuples(index=False, name=None)
            )
            if seeds
            else ""
        )
        for split in SPLITS:
            values = part[f"{split}_auc"].dropna()
            row[f"{split}_auc_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{split}_auc_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            row[f"{split}_auc_min"] = float(values.min()) if len(values) else math.nan
            row[f"{split}_auc_max"] = float(values.max()) if len(values) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_sd(mean: float, sd: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.3f}" if math.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def format_aggregate_markdown(aggregate: pd.DataFrame, swept: Sequence[str]) -> str:
    groups = [k for k in swept if k not in seed_keys(swept)]
    splits = [s for s in SPLITS if aggregate[f"{s}_auc_mean"].notna().any()]
    headers = [*groups, "runs", *(f"{SPLIT_TITLES[s]} AUC (mean ± SD)" for s in splits)]
    rows = [
        [
            *(str(r[k]) for k in groups),
            str(r["n_runs"]),
            *(_mean_sd(r[f"{s}_auc_mean"], r[f"{s}_auc_sd"]) for s in splits),
        ]
        for r in aggregate.to_dict("records")
    ]
    seeds = seed_keys(swept)
    note = (
        f"Mean ± standard deviation (n - 1) over {', '.join(seeds)}; "
        "min and max in the CSV. A failed run is left out of its group."
        if seeds
        else "No seed is swept: one run per row, no spread."
    )
    table = markdown_table(headers, rows, left_columns=max(1, len(groups)))
    return table + f"\n\n- {note}\n"


def write_aggregate(
    outcomes: Sequence[RunOutcome], swept: Sequence[str], out_dir: Path, title: str
) -> tuple[dict[str, Path], str]:
    """``runs.csv``, ``seed_aggregate.csv`` and ``seed_aggregate.md`` in ``out_dir``; returns
    the files and the aggregate's Markdown table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = run_table(outcomes, swept)
    aggregate = aggregate_over_seeds(runs, swept)
    files = {
        "runs": write_text_atomic(
            out_dir / "runs.csv", neutralise_formulas(runs).to_csv(index=False)
        ),
        "aggregate_csv": write_text_atomic(
            out_dir / "seed_aggregate.csv", neutralise_formulas(aggregate).to_csv(index=False)
        ),
    }
    table = format_aggregate_markdown(aggregate, swept)
    files["aggregate_markdown"] = write_text_atomic(
        out_dir / "seed_aggregate.md", f"# {title}: AUC over seeds\n\n{table}"
    )
    return files, table
