"""A TRIPOD+AI section for report.md, filled from the run folder (Collins et al. 2024, *BMJ*
385:e078378), with the items only the authors can write listed as such.

Filled from: ``config.yaml`` (data source, model specification, seed), ``predictions.csv``
(splits, sites, study dates, sample sizes and events, missing ages), ``stages.json`` (the
training split's counts, the prior-shift correction), ``metrics.json``
(performance with CIs, calibration, subgroups) and the installed package versions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from osteo.constants import EVALUATED_SPLITS
from osteo.evaluation.formatting import format_ci, format_number, markdown_table
from osteo.versions import library_versions

__all__ = ["USER_ITEMS", "software_versions", "tripod_section"]

PACKAGES = (
    "osteo",
    "torch",
    "lightning",
    "monai",
    "pyradiomics-bhklab",
    "numpy",
    "scipy",
    "scikit-learn",
    "statsmodels",
    "pandas",
)

USER_ITEMS = (
    "1-2 Title and abstract (structured, per TRIPOD+AI for Abstracts)",
    "3 Background: the clinical context, the intended use and users, existing models",
    "4 Objectives: development and/or validation, the target population",
    "5-6 Source of data and participants: eligibility criteria, recruitment, settings, the "
    "study dates if not in the manifest",
    "7 Data preparation beyond osteo's own (exclusions before the manifest)",
    "8 Outcome: how and when DXA was measured, blinding of the DXA readers to the radiograph",
    "9 Predictors: acquisition protocols, blinding of predictors to the outcome",
    "10 Sample size: the justification (osteo reports the numbers, not the rationale)",
    "14 Class imbalance and fairness: whether the subgroups below are the relevant ones",
    "16-17 Model updating, open science: protocol, registration, data and code availability",
    "18 Patient and public involvement; ethics approval and consent",
    "23-27 Discussion: interpretation, limitations, usability in practice",
)


def software_versions() -> dict[str, str]:
    return library_versions(PACKAGES, missing="not installed")


def _config(run_dir: Path) -> dict:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text()) or {}
    return loaded if isinstance(loaded, dict) else {}


def _stage_figures(run_dir: Path) -> dict:
    """``stages.json``'s figures per stage ({} when absent or unreadable)."""
    path = run_dir / "stages.json"
    try:
        stages = json.loads(path.read_text()).get("stages", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: v.get("figures", {}) for k, v in stages.items() if isinstance(v, dict)}


def _split_table(predictions: pd.DataFrame, data_figures: dict) -> str:
    rows = []
    train = data_figures.get("train")
    if "train" not in set(predictions["split"]) and isinstance(train, dict):
        # The training split is not predicted; its counts come from the data stage.
        rows.append(
            [
                "train",
                str(train.get("studies", "-")),
                str(train.get("patients", "-")),
                str(train.get("positives", "-")),
                format_number(100 * train["positives"] / train["studies"], 1) + "%"
                if train.get("studies")
                else "-",
                "-",
                "-",
                "-",
            ]
        )
    for split, part in predictions.groupby("split", sort=False):
        n_patients = part["patient_id_hash"].nunique() if "patient_id_hash" in part else None
        dates = "-"
        if "study_date" in part:
            d = pd.to_datetime(part["study_date"], errors="coerce").dropna()
            if len(d):
                dates = f"{d.min():%Y-%m-%d} to {d.max():%Y-%m-%d}"
        sites = ", ".join(sorted(map(str, part["site"].unique()))) if "site" in part else "-"
        missing_age = int(part["age"].isna().sum()) if "age" in part else None
        rows.append(
            [
                split,
                str(len(part)),
                "-" if n_patients is None else str(n_patients),
                str(int(part["label"].sum())),
                format_number(part["label"].mean() * 100, 1) + "%",
                sites,
                dates,
                "-" if missing_age is None else str(missing_age),
            ]
        )
    return markdown_table(
        (
            "split",
            "studies",
            "patients",
            "events (osteoporosis)",
            "prevalence",
            "sites",
            "study dates",
            "missing age",
        ),
        rows,
    )


def tripod_section(run_dir: str | Path, predictions: pd.DataFrame, metrics: dict) -> list[str]:
    run_dir = Path(run_dir)
    config = _config(run_dir)
    data, model, train = (config.get(k, {}) or {} for k in ("data", "model", "train"))
    settings = metrics.get("settings", {})
    figures = _stage_figures(run_dir)
    classifier = figures.get("classifier", {})
    splits = [s for s in EVALUATED_SPLITS if s in metrics]
    described = metrics[next((s for s in reversed(splits) if s != "val"), splits[0])]
    perf = [
        [
            s,
            format_ci(metrics[s]["auc"], metrics[s].get("auc_ci")),
            format_ci(metrics[s].get("sensitivity"), metrics[s].get("sensitivity_ci")),
            format_ci(metrics[s].get("specificity"), metrics[s].get("specificity_ci")),
            format_ci(metrics[s].get("calibration_slope"), metrics[s].get("calibration_slope_ci")),
            format_ci(
                metrics[s].get("calibration_in_the_large"),
                metrics[s].get("calibration_in_the_large_ci"),
            ),
        ]
        for s in splits
    ]
    versions = software_versions()
    subgroup_kinds = sorted({k for s in splits for k in metrics[s].get("subgroups", {})})
    lines = [
        "## TRIPOD+AI checklist (filled from this run)",
        "",
        "Items osteo can fill from the run; the numbers repeat the sections above. Item numbers "
        "follow TRIPOD+AI (Collins et al. 2024).",
        "",
        f"- **Data source (5a)**: manifest `{data.get('manifest', 'not recorded')}`"
        + (f", source `{data['source']}`" if data.get("source") else "")
        + ".",
        "- **Splits (5b, 12a)**: by patient (no patient in two splits); the external test is "
        "the held-out site(s). Dates and sites per split:",
        "",
        _split_table(predictions, figures.get("data", {})),
        "",
        "- **Missing data (7c)**: studies whose segmentation or ROI failed are listed in "
        "`stages.json` and excluded before prediction; a missing age is kept and forms its own "
        "age band; no imputation of the outcome.",
        f"- **Model specification (12c-e)**: head `{model.get('head', '?')}`, backbone "
        f"`{model.get('backbone', '?')}` (pretrained {model.get('pretrained', '?')}), class "
        f"balance `{train.get('class_balance', '?')}`, T-score auxiliary weight "
        f"{model.get('aux_tscore_weight', 0)}, seed {config.get('seed', '?')}; full settings "
        "in `config.yaml`, preprocessing for new images in `inference.json`.",
        f"- **Threshold and calibration (12e, 15)**: threshold chosen on val by "
        f"{settings.get('threshold_method', '?')}; prior-shift correction "
        f"{'applied' if settings.get('prior_shift_corrected') else 'not applied'}"
        + (
            f" (logit - {classifier['prior_shift_logit']}, training pos_weight "
            f"{classifier.get('pos_weight')})"
            if classifier.get("prior_shift_logit")
            else ""
        )
        + "; "
        f"recalibration {settings.get('recalibration', {}).get('method', 'none')}.",
        f"- **Statistical methods (12f)**: AUC CIs {described.get('auc_ci_method')}; "
        f"proportions {described.get('rates_ci_method')}; "
        f"{settings.get('n_bootstrap')} resamples, seed {settings.get('seed')}; see "
        "docs/evaluation.md.",
        "- **Performance with CIs (20b)**:",
        "",
        markdown_table(
            (
                "split",
                "AUC",
                "sensitivity",
                "specificity",
                "calibration slope",
                "calibration-in-the-large",
            ),
            perf,
        ),
        "",
        f"- **Subgroups (20c)**: {', '.join(subgroup_kinds) or 'none available'} "
        "(section Subgroups).",
        "- **Software (12g)**: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "Items the authors must write themselves:",
        "",
        *(f"- [ ] {item}" for item in USER_ITEMS),
        "",
    ]
    return lines
