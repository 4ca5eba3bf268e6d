"""One run's evaluation: ``metrics.json``, its plots and ``report.md`` from ``predictions.csv``.

The decision threshold is chosen on ``val`` and applied unchanged to ``internal_test`` and
``external_test``. :func:`format_summary_table` is the one summary every caller prints or logs
(the main command, ``tools/evaluate.py``, W&B), so the numbers cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from osteo.evaluation.calibration import (
    calibration_slope_intercept,
    expected_calibration_error,
    reliability_bins,
)
from osteo.evaluation.calibration_curve import calibration_with_ci, smoothed_calibration_curve
from osteo.evaluation.clinical_plots import (
    plot_bland_altman,
    plot_decision_curves,
    plot_smoothed_calibration,
)
from osteo.evaluation.clustered import RATE_NAMES, bootstrap_rates, clustered_auc
from osteo.evaluation.decision_curve import DEFAULT_DCA_THRESHOLDS, decision_curve
from osteo.evaluation.formatting import format_ci, format_number, markdown_table, text_table
from osteo.evaluation.plots import ROCSeries, plot_reliability, plot_roc
from osteo.evaluation.recalibration import fit_recalibration
from osteo.evaluation.report_sections import (
    calibration_section,
    clinical_utility_section,
    tscore_section,
)
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
from osteo.evaluation.training_curves import CSV_LOG_DIR, plot_training_curves
from osteo.evaluation.triage import TriageRule, apply_triage, choose_triage
from osteo.evaluation.tripod import tripod_section
from osteo.evaluation.tscore import tscore_metrics
from osteo.files import write_text_atomic

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


PATIENT_COLUMN = "patient_id_hash"  # the cluster of inference: one patient's studies
CALIBRATION_CURVE_RESAMPLES = 200  # the lowess band needs fewer resamples than a CI bound


def _patients(part: pd.DataFrame):
    return part[PATIENT_COLUMN].to_numpy() if PATIENT_COLUMN in part else None


def _auc_with_ci(y_true, y_prob, patients, confidence_level) -> dict:
    """Clustered (Obuchowski) AUC CI, the study-level DeLong CI beside it for reference."""
    n_positive = int(np.sum(y_true))
    if not 0 < n_positive < len(y_true):
        return {
            "auc": None,
            "auc_ci": None,
            "auc_variance": None,
            "auc_ci_method": "none: the split has one class",
        }
    if min(n_positive, len(y_true) - n_positive) < 2:
        return {
            "auc": roc_auc(y_true, y_prob),
            "auc_ci": None,
            "auc_variance": None,
            "auc_ci_method": "none: fewer than 2 positive or 2 negative studies",
        }
    delong = delong_auc(y_true, y_prob, confidence_level)
    result = {"auc": delong.auc, "auc_ci_delong_study_level": delong.ci}
    try:
        clustered = clustered_auc(y_true, y_prob, patients, confidence_level)
    except ValueError as err:  # fewer than 2 patients of a class: the study-level CI only
        result.update(
            {
                "auc_ci": delong.ci,
                "auc_variance": delong.variance,
                "auc_ci_method": f"delong, study level ({err})",
            }
        )
        return result
    method = (
        "obuchowski: clustered by patient (Obuchowski 1997)"
        if patients is not None
        else "delong: no patient ids, each study its own patient"
    )
    result.update(
        {"auc_ci": clustered.ci, "auc_variance": clustered.variance, "auc_ci_method": method}
    )
    return result


def _split_metrics(
    part: pd.DataFrame,
    threshold: float,
    confidence_level: float,
    n_bootstrap: int,
    seed: int,
    ece_bins: int,
    age_edges,
    triage: TriageRule | None = None,
    dca_thresholds=DEFAULT_DCA_THRESHOLDS,
) -> dict:
    y_true = part["label"].to_numpy()
    y_prob = part["probability"].to_numpy()
    patients = _patients(part)
    n_positive = int(np.sum(y_true))
    both_classes = 0 < n_positive < len(y_true)
    # What a degenerate split cannot give is left out (None) and named in "missing", so a
    # tiny or unlucky split still gets every figure that can be computed.
    missing = []
    if not both_classes:
        one = "positive" if n_positive else "negative"
        missing.append(f"AUC and calibration slope: the split has one class (all {one})")
    operating_point = threshold is not None and both_classes
    if operating_point:
        binary = binary_metrics_at_threshold(y_true, y_prob, threshold, confidence_level).to_dict()
    else:
        binary = dict.fromkeys(f.name for f in dataclasses.fields(BinaryMetrics))
        why = "the split has one class" if threshold is not None else "no threshold"
        missing.append(f"sensitivity, specificity, PPV, NPV: {why}")
    rates = {k: v for k, v in binary.items() if k not in ("threshold", "confidence_level")}
    wilson = {f"{k}_ci_wilson": rates[f"{k}_ci"] for k in RATE_NAMES}
    rates_method = "wilson score interval (study level)" if operating_point else None
    if n_bootstrap > 0 and operating_point:
        boot = bootstrap_rates(
            y_true,
            y_prob,
            threshold,
            patients,
            n_resamples=n_bootstrap,
            confidence_level=confidence_level,
            seed=seed,
        )
        rates.update({f"{k}_ci": v for k, v in boot.items()})
        rates_method = (
            "patient" if patients is not None else "study"
        ) + " bootstrap, percentile, stratified by label"
    metrics = {
        "n": len(part),
        "n_positive": n_positive,
        "n_patients": len(set(patients)) if patients is not None else len(part),
        **_auc_with_ci(y_true, y_prob, patients, confidence_level),
        "threshold": threshold,
        **rates,
        "rates_ci_method": rates_method,
        **wilson,
        "missing": missing,
        "ece": expected_calibration_error(y_true, y_prob, ece_bins),
        "reliability": reliability_bins(y_true, y_prob, ece_bins).to_dict(),
    }
    if both_classes:
        metrics.update(
            calibration_with_ci(
                y_true,
                y_prob,
                patients,
                n_resamples=min(n_bootstrap, 1000),
                confidence_level=confidence_level,
                seed=seed,
            )
        )
        metrics["calibration_curve"] = smoothed_calibration_curve(
            y_true,
            y_prob,
            patients,
            n_resamples=min(n_bootstrap, CALIBRATION_CURVE_RESAMPLES),
            confidence_level=confidence_level,
            seed=seed,
        )
        if "probability_uncorrected" in part:
            before = part["probability_uncorrected"].to_numpy()
            fit = calibration_slope_intercept(y_true, before)
            metrics["calibration_before_correction"] = {
                "calibration_slope": fit.slope,
                "calibration_intercept": fit.intercept,
                "calibration_in_the_large": fit.calibration_in_the_large,
                "ece": expected_calibration_error(y_true, before, ece_bins),
            }
        if "site" in part and part["site"].nunique() > 1:
            metrics["calibration_by_site"] = _calibration_by_site(
                part, confidence_level, min(n_bootstrap, 1000), seed
            )
    else:
        metrics["calibration_note"] = "one class only: no calibration slope or intercept"
    metrics["decision_curve"] = decision_curve(y_true, y_prob, dca_thresholds).to_dict("list")
    if triage is not None:
        metrics["triage"] = apply_triage(
            y_true,
            y_prob,
            triage,
            patients,
            n_resamples=n_bootstrap if both_classes else 0,
            confidence_level=confidence_level,
            seed=seed,
        )
    if n_bootstrap > 0 and metrics["auc_variance"] is not None:
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
    if {"tscore", "tscore_pred"} <= set(part.columns):
        metrics["tscore_regression"] = tscore_metrics(
            part["tscore"], part["tscore_pred"], y_true, patients, confidence_level
        )
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


def _calibration_by_site(part: pd.DataFrame, confidence_level, n_bootstrap, seed) -> list:
    rows = []
    for site, group in part.groupby("site", sort=True):
        y = group["label"].to_numpy()
        row = {"site": str(site), "n": len(group), "n_positive": int(y.sum())}
        if 0 < y.sum() < len(y):
            row.update(
                calibration_with_ci(
                    y,
                    group["probability"].to_numpy(),
                    _patients(group),
                    n_resamples=n_bootstrap,
                    confidence_level=confidence_level,
                    seed=seed,
                )
            )
        else:
            row["calibration_note"] = "one class only at this site"
        rows.append(row)
    return rows


def recalibrate(predictions: pd.DataFrame, method: str):
    """``(predictions with recalibrated probability, the Recalibrator)``, fitted on val."""
    val = predictions[predictions["split"] == "val"]
    recalibrator = fit_recalibration(method, val["label"].to_numpy(), val["probability"].to_numpy())
    if recalibrator.method != "none":
        predictions = predictions.copy()
        predictions["probability_before_recalibration"] = predictions["probability"]
        predictions["probability"] = recalibrator(predictions["probability"].to_numpy())
    return predictions, recalibrator


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
    recalibration: str = "none",
    triage_npv: float = 0.95,
    triage_ppv: float = 0.95,
    dca_thresholds=DEFAULT_DCA_THRESHOLDS,
) -> dict:
    """Metrics of every evaluated split present in ``predictions`` (see runs.load_predictions).

    Returns ``{split: {...}, "settings": {...}}`` ready for metrics.json. The threshold, the
    optional recalibration (``platt``/``isotonic``) and the triage rule come from ``val``
    (required); ``source`` names the file in error messages.
    """
    present = [s for s in EVALUATED_SPLITS if (predictions["split"] == s).any()]
    if "val" not in present:
        raise EvaluationInputError(
            f"{source}: no 'val' rows; the decision threshold is chosen "
            "on validation and must not be chosen on a test set"
        )
    metrics: dict = {}
    val = predictions[predictions["split"] == "val"]
    threshold, threshold_note, triage = None, None, None
    if val["label"].nunique() < 2:
        # No threshold can be chosen on one class, and none may come from a test set: the
        # AUCs are still computed, the operating-point figures are left out and said so.
        # Nothing else can be fitted on one class either: no recalibration, no triage rule.
        one = "positive" if int(val["label"].iloc[0]) == 1 else "negative"
        threshold_note = f"threshold not chosen: val has one class ({len(val)} studies, all {one})"
        predictions, recalibrator = recalibrate(predictions, "none")
    else:
        try:
            # Recalibration is fitted on val only and applied unchanged to every split; the
            # val split's calibration after it is then in-sample (docs/evaluation.md).
            predictions, recalibrator = recalibrate(predictions, recalibration)
            val = predictions[predictions["split"] == "val"]
            threshold = select_threshold(
                val["label"].to_numpy(),
                val["probability"].to_numpy(),
                threshold_method,
                target_sensitivity,
            )
            triage = choose_triage(
                val["label"].to_numpy(), val["probability"].to_numpy(), triage_npv, triage_ppv
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
                triage,
                dca_thresholds,
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
        "cluster_unit": "patient" if PATIENT_COLUMN in predictions else "study",
        "bootstrap_interval": "percentile",
        "recalibration": {"method": recalibrator.method, "fitted_on": "val", **recalibrator.params},
        "prior_shift_corrected": "probability_uncorrected" in predictions,
        "triage_rule": triage.to_dict() if triage is not None else None,
        "dca_thresholds": [float(t) for t in dca_thresholds],
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


def _report_markdown(
    name: str, metrics: dict, plots: list[Path], tripod: list[str] | None = None
) -> str:
    settings = metrics[SETTINGS_KEY]
    splits = [s for s in EVALUATED_SPLITS if s in metrics]
    level = f"{100 * settings['confidence_level']:g}%"
    any_split = metrics[splits[0]]
    threshold = any_split["threshold"]
    # The methods line describes a test split's intervals (val may be too small for some).
    described = metrics[next((s for s in reversed(splits) if s != "val"), splits[0])]
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
        f"{level} intervals: AUC {described.get('auc_ci_method') or 'none'}; sensitivity, "
        f"specificity, PPV, NPV: {described.get('rates_ci_method') or 'none'} "
        f"({settings['n_bootstrap']} resamples, seed {settings['seed']}; Wilson intervals in "
        "metrics.json as `*_ci_wilson`). See docs/evaluation.md.",
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
    ]
    lines += calibration_section(metrics, splits, settings)
    lines += clinical_utility_section(metrics, splits, settings)
    lines += tscore_section(metrics, splits)
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
    lines += tripod or []
    lines += ["## Plots", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def evaluate_run(run_dir: str | Path, **settings) -> dict:
    """Recompute a run folder's ``metrics.json``, plots (``roc_<test split>.png``,
    ``reliability.png``, ``calibration_curve.png``, ``decision_curve.png`` and its CSV,
    ``bland_altman.png`` with a T-score head) and ``report.md`` from its ``predictions.csv``;
    return the metrics as written (JSON types). ``settings`` go to
    :func:`compute_run_metrics`.
    """
    run = load_run(run_dir)
    # The JSON form (NaN -> None) is what is written, returned and rendered: one version.
    metrics = to_jsonable(
        compute_run_metrics(run.predictions, source=str(run.path / "predictions.csv"), **settings)
    )
    write_text_atomic(
        run.path / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    )
    # The plots show the probabilities the metrics were computed on (after recalibration).
    predictions, _ = recalibrate(run.predictions, settings.get("recalibration", "none"))

    def split(name: str) -> pd.DataFrame:
        return predictions[predictions["split"] == name]

    threshold = metrics["val"]["threshold"]
    splits = [s for s in EVALUATED_SPLITS if s in metrics]
    plots = []
    for name in TEST_SPLITS:
        if name in metrics and metrics[name]["auc"] is not None:  # no ROC for one class
            part = split(name)
            series = ROCSeries(
                run.name, part["label"].to_numpy(), part["probability"].to_numpy(), threshold
            )
            plots.append(
                plot_roc([series], run.path / f"roc_{name}.png", f"{SPLIT_TITLES[name]}: ROC")
            )
    panels = {
        SPLIT_TITLES[s]: [
            (run.name, split(s)["label"].to_numpy(), split(s)["probability"].to_numpy())
        ]
        for s in splits
    }
    plots.append(
        plot_reliability(panels, run.path / "reliability.png", metrics[SETTINGS_KEY]["ece_bins"])
    )
    curves = {
        SPLIT_TITLES[s]: metrics[s]["calibration_curve"]
        for s in splits
        if "calibration_curve" in metrics[s]
    }
    if curves:
        plots.append(plot_smoothed_calibration(curves, run.path / "calibration_curve.png"))
    dca = {s: pd.DataFrame(metrics[s]["decision_curve"]) for s in splits}
    write_text_atomic(
        run.path / "decision_curve.csv",
        pd.concat([frame.assign(split=s) for s, frame in dca.items()], ignore_index=True).to_csv(
            index=False
        ),
    )
    plots.append(
        plot_decision_curves(
            {SPLIT_TITLES[s]: f for s, f in dca.items()}, run.path / "decision_curve.png"
        )
    )
    if {"tscore", "tscore_pred"} <= set(predictions.columns):
        tests = predictions[predictions["split"].isin(TEST_SPLITS)]
        tests = tests[tests["tscore"].notna() & tests["tscore_pred"].notna()]
        if len(tests) > 2:
            plots.append(
                plot_bland_altman(
                    tests["tscore"],
                    tests["tscore_pred"],
                    run.path / "bland_altman.png",
                    "T-score: test sets",
                )
            )
    curves = plot_training_curves(
        {
            stage: run.path / CSV_LOG_DIR / stage / "metrics.csv"
            for stage in ("segmentation", "classifier")
        },
        run.path / "training_curves.png",
    )
    if curves is not None:
        plots.append(curves)
    tripod = tripod_section(run.path, predictions, metrics)
    write_text_atomic(run.path / "report.md", _report_markdown(run.name, metrics, plots, tripod))
    return metrics
