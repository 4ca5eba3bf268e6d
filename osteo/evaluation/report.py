"""One run's evaluation: ``metrics.json``, its plots and ``report.md`` from ``predictions.csv``.

The decision threshold is chosen on ``val`` and applied unchanged to ``internal_test`` and
``external_test``. :func:`format_summary_table` is the one summary every caller prints or logs
(the main command, ``tools/evaluate.py``, W&B), so the numbers cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from osteo.evaluation.calibration import (
    CalibrationFit,
    calibration_slope_intercept,
    expected_calibration_error,
    reliability_bins,
)
from osteo.evaluation.formatting import format_ci, format_number, markdown_table, text_table
from osteo.evaluation.plots import ROCSeries, plot_reliability, plot_roc
from osteo.evaluation.runs import (
    EVALUATED_SPLITS,
    TEST_SPLITS,
    EvaluationInputError,
    load_run,
)
from osteo.evaluation.stats import bootstrap_auc_ci, delong_auc, roc_auc
from osteo.evaluation.subgroups import (
    DEFAULT_AGE_EDGES,
    age_band_names,
    age_bands,
    subgroup_aucs,
)
from osteo.evaluation.thresholds import (
    BinaryMetrics,
    binary_metrics_at_threshold,
    select_threshold,
)

__all__ = [
    "compute_run_metrics",
    "evaluate_run",
    "format_summary_table",
    "summary_rows",
    "to_jsonable",
    "write_text_atomic",
]

SETTINGS_KEY = "settings"  # the one top-level key of metrics.json that is not a split
SPLIT_TITLES = {
    "val": "Validation",
    "internal_test": "Internal test",
    "external_test": "External test",
}
THRESHOLD_DESCRIPTIONS = {
    "youden": "Youden's J (max sensitivity + specificity - 1)",
    "sensitivity": "the highest threshold reaching sensitivity >= {target}",
}


def to_jsonable(value):
    """Plain JSON types: numpy scalars/arrays to Python, tuples to lists, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write via a temporary file in the same folder and a rename: readers never see half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _split_metrics(
    part: pd.DataFrame,
    threshold: float,
    confidence_level: float,
    n_bootstrap: int,
    seed: int,
    ece_bins: int,
    age_edges,
) -> dict:
    y_true = part["label"].to_numpy()
    y_prob = part["probability"].to_numpy()
    patients = part["patient_id_hash"].to_numpy() if "patient_id_hash" in part else None
    n_positive = int(np.sum(y_true))
    # What a degenerate split cannot give is left out (None) and named in "missing", so a
    # tiny or unlucky split still gets every figure that can be computed.
    missing = []
    both_classes = 0 < n_positive < len(y_true)
    if not both_classes:
        one = "positive" if n_positive else "negative"
        missing.append(f"AUC and calibration slope: the split has one class (all {one})")
        auc_value, auc_ci, variance = None, None, None
        method = "none: the split has one class"
    # DeLong's variance needs two studies of each class; a smaller split (a tiny cohort, a
    # rare subgroup) still gets its AUC, with no interval and a note saying why.
    elif min(n_positive, len(y_true) - n_positive) >= 2:
        auc = delong_auc(y_true, y_prob, confidence_level)
        auc_value, auc_ci, variance, method = auc.auc, auc.ci, auc.variance, "delong"
    else:
        auc_value, auc_ci, variance = roc_auc(y_true, y_prob), None, None
        method = "none: fewer than 2 positive or 2 negative studies"
    if threshold is not None and both_classes:
        binary = binary_metrics_at_threshold(y_true, y_prob, threshold, confidence_level).to_dict()
    else:
        binary = dict.fromkeys(f.name for f in dataclasses.fields(BinaryMetrics))
        why = "the split has one class" if threshold is not None else "no threshold"
        missing.append(f"sensitivity, specificity, PPV, NPV: {why}")
    calibration = (
        calibration_slope_intercept(y_true, y_prob)
        if both_classes
        else CalibrationFit(float("nan"), float("nan"), float("nan"), "one class")
    )
    metrics = {
        "n": len(part),
        "n_positive": n_positive,
        "n_patients": len(set(patients)) if patients is not None else len(part),
        "auc": auc_value,
        "auc_ci": auc_ci,
        "auc_ci_method": method,
        "auc_variance": variance,
        "threshold": threshold,
        **{k: v for k, v in binary.items() if k not in ("threshold", "confidence_level")},
        "ece": expected_calibration_error(y_true, y_prob, ece_bins),
        "calibration_slope": calibration.slope,
        "calibration_intercept": calibration.intercept,
        "calibration_in_the_large": calibration.calibration_in_the_large,
        "calibration_note": calibration.note,
        "reliability": reliability_bins(y_true, y_prob, ece_bins).to_dict(),
        "missing": missing,
    }
    if n_bootstrap > 0 and variance is not None:
        boot = bootstrap_auc_ci(
            y_true,
            y_prob,
            patients,
            n_resamples=n_bootstrap,
            confidence_level=confidence_level,
            seed=seed,
        )
        metrics["auc_ci_bootstrap"] = boot.ci
        metrics["bootstrap_unit"] = boot.unit
    subgroups = {}
    if "sex" in part:
        subgroups["sex"] = [
            g.to_dict() for g in subgroup_aucs(y_true, y_prob, part["sex"], confidence_level)
        ]
    if "age" in part:
        bands = age_bands(part["age"].to_numpy(dtype=float), age_edges)
        subgroups["age_band"] = [
            g.to_dict()
            for g in subgroup_aucs(
                y_true, y_prob, bands, confidence_level, order=age_band_names(age_edges)
            )
        ]
    if subgroups:
        metrics["subgroups"] = subgroups
    return metrics


def compute_run_metrics(
    predictions: pd.DataFrame,
    *,
    threshold_method: str = "youden",
    target_sensitivity: float | None = None,
    confidence_level: float = 0.95,
    n_bootstrap: int = 2000,
    seed: int = 0,
    ece_bins: int = 10,
    age_edges=DEFAULT_AGE_EDGES,
    source: str = "predictions",
) -> dict:
    """Metrics of every evaluated split present in ``predictions`` (see runs.load_predictions).

    Returns ``{split: {...}, "settings": {...}}`` ready for metrics.json. The threshold comes
    from ``val`` (required); ``source`` names the file in error messages.
    """
    present = [s for s in EVALUATED_SPLITS if (predictions["split"] == s).any()]
    if "val" not in present:
        raise EvaluationInputError(
            f"{source}: no 'val' rows; the decision threshold is chosen "
            "on validation and must not be chosen on a test set"
        )
    metrics: dict = {}
    val = predictions[predictions["split"] == "val"]
    threshold, threshold_note = None, None
    if val["label"].nunique() < 2:
        # No threshold can be chosen on one class, and none may come from a test set: the
        # AUCs are still computed, the operating-point figures are left out and said so.
        one = "positive" if int(val["label"].iloc[0]) == 1 else "negative"
        threshold_note = f"threshold not chosen: val has one class ({len(val)} studies, all {one})"
    else:
        try:
            threshold = select_threshold(
                val["label"].to_numpy(),
                val["probability"].to_numpy(),
                threshold_method,
                target_sensitivity,
            )
        except ValueError as err:
            raise EvaluationInputError(f"{source}, split 'val': {err}") from err
    for split in present:
        try:
            metrics[split] = _split_metrics(
                predictions[predictions["split"] == split],
                threshold,
                confidence_level,
                n_bootstrap,
                seed,
                ece_bins,
                age_edges,
            )
        except ValueError as err:
            raise EvaluationInputError(f"{source}, split {split!r}: {err}") from err
    metrics[SETTINGS_KEY] = {
        "threshold_split": "val",
        "threshold_method": threshold_method,
        "target_sensitivity": target_sensitivity,
        "confidence_level": confidence_level,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "ece_bins": ece_bins,
        "age_edges": list(age_edges),
        "missing_splits": [s for s in EVALUATED_SPLITS if s not in present],
        "threshold_note": threshold_note,
    }
    return metrics


def summary_rows(metrics: dict) -> list[dict]:
    """One flat record per split (for the summary table, CSV export or a W&B table)."""
    rows = []
    for split in EVALUATED_SPLITS:
        if split not in metrics:
            continue
        m = metrics[split]
        ci = m.get("auc_ci") or (None, None)
        rows.append(
            {
                "split": split,
                "n": m["n"],
                "n_positive": m["n_positive"],
                "auc": m["auc"],
                "auc_ci_low": ci[0],
                "auc_ci_high": ci[1],
                "sensitivity": m.get("sensitivity"),
                "specificity": m.get("specificity"),
                "ppv": m.get("ppv"),
                "npv": m.get("npv"),
                "threshold": m.get("threshold"),
            }
        )
    return rows


SUMMARY_HEADERS = (
    "split",
    "n",
    "positives",
    "AUC (95% CI)",
    "sensitivity",
    "specificity",
    "PPV",
    "NPV",
    "threshold",
)


def _summary_cells(row: dict) -> list[str]:
    return [
        row["split"],
        str(row["n"]),
        str(row["n_positive"]),
        format_ci(row["auc"], (row["auc_ci_low"], row["auc_ci_high"])),
        *(format_number(row[k]) for k in ("sensitivity", "specificity", "ppv", "npv")),
        format_number(row["threshold"], 4),
    ]


def format_summary_table(metrics: dict) -> str:
    """Plain-text summary of a run's metrics (a metrics.json dict), one line per split."""
    return text_table(SUMMARY_HEADERS, [_summary_cells(r) for r in summary_rows(metrics)])


def format_count(value) -> str:
    return "-" if value is None else str(value)


def _describe_threshold(settings: dict) -> str:
    template = THRESHOLD_DESCRIPTIONS.get(settings["threshold_method"], "{method}")
    return template.format(
        target=settings.get("target_sensitivity"), method=settings["threshold_method"]
    )


def _report_markdown(name: str, metrics: dict, plots: list[Path]) -> str:
    settings = metrics[SETTINGS_KEY]
    splits = [s for s in EVALUATED_SPLITS if s in metrics]
    level = f"{100 * settings['confidence_level']:g}%"
    any_split = metrics[splits[0]]
    threshold = any_split["threshold"]
    chosen = (
        f"Threshold **{threshold:.4f}** chosen on `val` by {_describe_threshold(settings)}, "
        "then applied unchanged to the test sets (a study is positive when its probability "
        ">= the threshold)."
        if threshold is not None
        else f"**{settings.get('threshold_note')}**: no operating point (sensitivity, "
        "specificity, PPV, NPV) is reported."
    )
    lines = [
        f"# Evaluation of `{name}`",
        "",
        chosen,
        f"{level} intervals: AUC by DeLong's method (Sun & Xu algorithm); proportions by "
        f"Wilson's score interval. Bootstrap: {settings['n_bootstrap']} resamples of "
        f"{any_split.get('bootstrap_unit', 'study')}s stratified by label, seed "
        f"{settings['seed']}. See docs/evaluation.md.",
        "",
        "## Summary",
        "",
        markdown_table(SUMMARY_HEADERS, [_summary_cells(r) for r in summary_rows(metrics)]),
        "",
    ]
    if settings["missing_splits"]:
        lines += [f"No predictions for: {', '.join(settings['missing_splits'])}.", ""]
    not_computed = [f"- `{s}`: {why}" for s in splits for why in metrics[s].get("missing", [])]
    if not_computed:
        lines += ["Not computed:", "", *not_computed, ""]

    def with_ci(m, key):
        return format_ci(m[key], m[f"{key}_ci"])

    lines += [
        "## Operating point and AUC intervals",
        "",
        markdown_table(
            (
                "split",
                "TP",
                "FP",
                "TN",
                "FN",
                "sensitivity",
                "specificity",
                "PPV",
                "NPV",
                "AUC bootstrap CI",
            ),
            [
                [
                    s,
                    *(format_count(metrics[s][k]) for k in ("tp", "fp", "tn", "fn")),
                    *(with_ci(metrics[s], k) for k in ("sensitivity", "specificity", "ppv", "npv")),
                    format_ci(metrics[s]["auc"], metrics[s].get("auc_ci_bootstrap")),
                ]
                for s in splits
            ],
        ),
        "",
        "## Calibration",
        "",
        markdown_table(
            (
                "split",
                f"ECE ({settings['ece_bins']} bins)",
                "slope",
                "intercept",
                "calibration-in-the-large",
                "note",
            ),
            [
                [
                    s,
                    format_number(metrics[s]["ece"]),
                    format_number(metrics[s]["calibration_slope"]),
                    format_number(metrics[s]["calibration_intercept"]),
                    format_number(metrics[s]["calibration_in_the_large"]),
                    metrics[s]["calibration_note"],
                ]
                for s in splits
            ],
        ),
        "",
    ]
    subgroup_rows = [
        [
            s,
            kind,
            g["group"],
            str(g["n"]),
            str(g["n_positive"]),
            format_ci(g["auc"], g["auc_ci"]) if g["auc"] is not None else g["note"],
        ]
        for s in splits
        for kind, groups in metrics[s].get("subgroups", {}).items()
        for g in groups
    ]
    if subgroup_rows:
        lines += [
            "## Subgroups",
            "",
            markdown_table(
                ("split", "by", "group", "n", "positives", "AUC (95% CI)"),
                subgroup_rows,
                left_columns=3,
            ),
            "",
        ]
    lines += ["## Plots", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def evaluate_run(run_dir: str | Path, **settings) -> dict:
    """Recompute a run folder's ``metrics.json``, ``roc_<test split>.png``, ``reliability.png``
    and ``report.md`` from its ``predictions.csv``; return the metrics as written (JSON types).
    ``settings`` go to :func:`compute_run_metrics`.
    """
    run = load_run(run_dir)
    # The JSON form (NaN -> None) is what is written, returned and rendered: one version.
    metrics = to_jsonable(
        compute_run_metrics(run.predictions, source=str(run.path / "predictions.csv"), **settings)
    )
    write_text_atomic(
        run.path / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    )
    threshold = metrics["val"]["threshold"]
    plots = []
    for split in TEST_SPLITS:
        if split in metrics and metrics[split]["auc"] is not None:  # no ROC for one class
            part = run.split(split)
            series = ROCSeries(
                run.name, part["label"].to_numpy(), part["probability"].to_numpy(), threshold
            )
            plots.append(
                plot_roc([series], run.path / f"roc_{split}.png", f"{SPLIT_TITLES[split]}: ROC")
            )
    panels = {
        SPLIT_TITLES[s]: [
            (run.name, run.split(s)["label"].to_numpy(), run.split(s)["probability"].to_numpy())
        ]
        for s in EVALUATED_SPLITS
        if s in metrics
    }
    plots.append(
        plot_reliability(panels, run.path / "reliability.png", metrics[SETTINGS_KEY]["ece_bins"])
    )
    write_text_atomic(run.path / "report.md", _report_markdown(run.name, metrics, plots))
    return metrics
