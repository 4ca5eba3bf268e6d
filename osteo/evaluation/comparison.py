"""The reference's comparison table: several runs (and readers) on the same test sets.

Per test set, every model's AUC with its CI clustered by patient (Obuchowski 1997). The
primary model is named in advance (``--primary``, default ``fusion_all``), never chosen from
test results; each pre-specified comparison (default: every other model and every reader)
is a paired Obuchowski test against it on the same studies, with a patient-bootstrap CI of
the AUC difference. The p-values of one test set form one family, Holm-corrected together.
Several runs of one model (seeds) are each listed and summarised as mean +- SD.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from osteo.evaluation.clustered import (
    clustered_auc,
    clustered_paired_test,
    patient_index_bootstrap,
)
from osteo.evaluation.formatting import format_ci, format_p_value, markdown_table
from osteo.evaluation.plots import ReaderPoints, ROCSeries, plot_reliability, plot_roc
from osteo.evaluation.report import PATIENT_COLUMN, SPLIT_TITLES
from osteo.evaluation.runs import (
    TEST_SPLITS,
    EvaluationInputError,
    Run,
    load_excluded,
    load_readers,
    load_run,
)
from osteo.evaluation.stats import _auc_unchecked, holm_adjust
from osteo.evaluation.thresholds import select_threshold
from osteo.files import write_text_atomic
from osteo.tables import neutralise_formulas

__all__ = [
    "DEFAULT_PRIMARY",
    "ComparisonPlan",
    "ComparisonResult",
    "PrimaryNotFoundError",
    "build_comparison_table",
    "compare_runs",
    "format_comparison_markdown",
    "model_key",
    "plan_comparisons",
    "planned_analysis",
    "seed_summary",
]

REFERENCE = "reference"
DEFAULT_PRIMARY = "fusion_all"
HEAD_INPUTS = ("deep", "texture", "clinical")  # canonical order (osteo.classification.heads)


@dataclass
class ComparisonResult:
    """The comparison table (one row per model or reader) and the files written."""

    table: pd.DataFrame
    markdown: str
    files: dict[str, Path] = field(default_factory=dict)


def _aligned_split(runs: Sequence[Run], names: Sequence[str], split: str):
    """Labels (N,), study ids (N,) and scores {name: (N,)} of the runs having ``split``,
    aligned on the same studies. Different study sets cannot be compared pairwise."""
    parts = {
        n: r.split(split).set_index("study_id")
        for n, r in zip(names, runs, strict=True)
        if (r.predictions["split"] == split).any()
    }
    if not parts:
        return None
    (first_name, first), *others = parts.items()
    for name, part in others:
        if set(part.index) != set(first.index):
            only_first = len(set(first.index) - set(part.index))
            only_other = len(set(part.index) - set(first.index))
            raise EvaluationInputError(
                f"split {split!r}: runs {first_name!r} and {name!r} have different studies "
                f"({only_first} only in the first, {only_other} only in the second); a paired "
                "comparison needs the same test set"
            )
        disagree = part.loc[first.index, "label"].to_numpy() != first["label"].to_numpy()
        if disagree.any():
            raise EvaluationInputError(
                f"split {split!r}: runs {first_name!r} and {name!r} disagree on the label of "
                f"{int(disagree.sum())} studies, e.g. {first.index[disagree][0]!r}"
            )
    study_ids = first.index.to_numpy()
    scores = {n: p.loc[study_ids, "probability"].to_numpy() for n, p in parts.items()}
    # Patients cluster the studies for every CI and test (Obuchowski; the patient bootstrap).
    patients = first[PATIENT_COLUMN].to_numpy() if PATIENT_COLUMN in first else None
    return first["label"].to_numpy(), study_ids, scores, patients


def _reader_split(readers: pd.DataFrame, runs: Sequence[Run]) -> str:
    """The one test split whose studies the readers scored."""
    split_of = pd.concat([r.predictions[["study_id", "split"]] for r in runs])
    split_of = split_of.drop_duplicates().set_index("study_id")["split"]
    splits = readers["study_id"].map(split_of.groupby(level=0).first())
    counts = splits.value_counts().to_dict()
    if len(counts) != 1 or next(iter(counts)) not in TEST_SPLITS:
        raise EvaluationInputError(
            f"readers must score the studies of one test split "
            f"{list(TEST_SPLITS)}; their studies fall in {counts}"
        )
    return next(iter(counts))


def _config(run: Run) -> dict:
    path = run.path / "config.yaml"
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text()) or {}
    return loaded if isinstance(loaded, dict) else {}


def model_key(run: Run) -> str:
    """The model a run trains, for grouping seeds and naming the primary: ``fusion_<head>``
    (``fusion_all`` for deep+texture+clinical, as configs/fusion_*.yaml) when the config
    names a head, else the run's name."""
    model = _config(run).get("model")
    head = model.get("head") if isinstance(model, dict) else None
    if not head:
        return run.name
    parts = set(str(head).split("_"))
    if str(head) == "all" or parts == set(HEAD_INPUTS):
        return "fusion_all"
    if parts <= set(HEAD_INPUTS):
        return "fusion_" + "_".join(i for i in HEAD_INPUTS if i in parts)
    return f"fusion_{head}"  # a custom registered head


def planned_analysis(runs: Sequence[Run]) -> tuple[str, list[str] | None]:
    """The primary model and comparisons named in the runs' ``config.yaml``
    (``evaluation.primary`` / ``evaluation.comparisons``; defaults when absent). Runs that
    name different ones are an error: the plan must be one."""
    primaries, comparisons = set(), set()
    for run in runs:
        section = _config(run).get("evaluation")
        if isinstance(section, dict):
            if section.get("primary"):
                primaries.add(str(section["primary"]))
            if section.get("comparisons"):
                comparisons.add(tuple(map(str, section["comparisons"])))
    if len(primaries) > 1 or len(comparisons) > 1:
        raise EvaluationInputError(
            f"the runs' config.yaml name different analyses (evaluation.primary "
            f"{sorted(primaries)}, evaluation.comparisons {sorted(comparisons)}); pass "
            "--primary and --compare to choose one"
        )
    return (
        primaries.pop() if primaries else DEFAULT_PRIMARY,
        list(comparisons.pop()) if comparisons else None,
    )


def run_seed(run: Run):
    """The run's training seed from its config (None when unknown)."""
    return _config(run).get("seed")


def _display_names(runs: Sequence[Run], keys: Sequence[str]) -> list[str]:
    """Model keys, made unique with the folder name when several runs share one (seeds)."""
    names = [
        f"{k} ({r.path.name})" if keys.count(k) > 1 else k for k, r in zip(keys, runs, strict=True)
    ]
    names = [
        f"{k} ({r.path})" if names.count(n) > 1 else n
        for n, k, r in zip(names, keys, runs, strict=True)
    ]
    if len(set(names)) < len(names):
        raise EvaluationInputError(f"the same run folder is given twice: {names}")
    return names


class PrimaryNotFoundError(EvaluationInputError):
    """The pre-specified primary model is not among the runs given."""


@dataclass(frozen=True)
class ComparisonPlan:
    """The pre-specified analysis: the primary model and the models/readers compared with it."""

    primary: str
    comparisons: tuple[str, ...]  # model keys and "reader:<name>"


def plan_comparisons(
    keys: Sequence[str],
    reader_names: Sequence[str],
    primary: str | None,
    comparisons: Sequence[str] | None,
) -> ComparisonPlan:
    """Check the pre-specified primary and comparisons against the runs given. The reference
    is never chosen from results: with several models, the primary must be named."""
    models = list(dict.fromkeys(keys))
    readers = [f"reader:{r}" for r in reader_names]
    if primary is None or (len(models) == 1 and primary not in models):
        if len(models) != 1:
            raise EvaluationInputError(
                f"name the primary model (--primary / evaluation.primary); the runs hold {models}"
            )
        primary = models[0]
    if primary not in models:
        raise PrimaryNotFoundError(
            f"the primary model {primary!r} is not among the runs given (models: {models}); "
            "pass its run folder or name another with --primary"
        )
    default = [m for m in models if m != primary] + readers
    if comparisons is None:
        chosen = default
    else:
        chosen = []
        for item in comparisons:
            key = (
                item
                if item in models or item.startswith("reader:")
                else (f"reader:{item}" if f"reader:{item}" in readers else item)
            )
            if key not in default:
                raise EvaluationInputError(
                    f"comparison {item!r} is not among the runs and readers given "
                    f"(available: {default}); the primary is {primary!r}"
                )
            chosen.append(key)
    return ComparisonPlan(primary, tuple(chosen))


def build_comparison_table(
    runs: Sequence[Run],
    readers: pd.DataFrame | None = None,
    confidence_level: float = 0.95,
    primary: str | None = None,
    comparisons: Sequence[str] | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per run, then one per reader: per test split ``n``, ``n_positive``, ``auc``,
    ``auc_ci_low/high`` (clustered by patient, Obuchowski 1997), and for the pre-specified
    comparisons ``p_value`` (Obuchowski's paired test against the primary model, on the same
    studies), ``p_value_holm`` (Holm over exactly the pre-specified comparisons of that test
    set), ``auc_difference`` (primary minus this one) with its patient-bootstrap percentile
    CI, ``compared_with`` and ``n_compared``. With several runs of one model (seeds), each is
    compared with the primary's run of the same seed (else the primary's first run)."""
    if not any(r.predictions["split"].isin(TEST_SPLITS).any() for r in runs):
        raise EvaluationInputError(
            f"none of the runs has test predictions {list(TEST_SPLITS)}: "
            f"{[str(r.path) for r in runs]}"
        )
    keys = [model_key(r) for r in runs]
    names = _display_names(runs, keys)
    reader_names = [] if readers is None else sorted(readers["reader"].unique())
    plan = plan_comparisons(keys, reader_names, primary, comparisons)
    seeds = [run_seed(r) for r in runs]
    primary_runs = [n for n, k in zip(names, keys, strict=True) if k == plan.primary]
    primary_by_seed = {
        s: n for n, k, s in zip(names, keys, seeds, strict=True) if k == plan.primary
    }
    rows = {
        n: {"kind": "model", "name": n, "model": k, "seed": s, "source": str(r.path)}
        for n, k, s, r in zip(names, keys, seeds, runs, strict=True)
    }
    reader_split = _reader_split(readers, runs) if readers is not None else None
    for reader in reader_names:
        rows[f"reader:{reader}"] = {
            "kind": "reader",
            "name": reader,
            "model": reader,
            "source": "readers",
        }
    for split in TEST_SPLITS:
        aligned = _aligned_split(runs, names, split)
        if aligned is None:
            if split == reader_split:
                raise EvaluationInputError(
                    f"readers score {split!r} studies but no run has {split!r} predictions"
                )
            continue
        labels, study_ids, scores, patients = aligned
        estimates = {}
        for name, score in scores.items():
            try:
                estimates[name] = _auc_estimate(labels, score, patients, confidence_level)
            except ValueError as err:
                raise EvaluationInputError(f"run {name!r}, split {split!r}: {err}") from err
        family = []  # (row key, raw p) of every pre-specified comparison in this split
        for name, estimate in estimates.items():
            row = rows[name]
            key = row["model"]
            reference = primary_by_seed.get(row["seed"], primary_runs[0])
            row.update(
                {
                    f"{split}_n": len(labels),
                    f"{split}_n_positive": int(labels.sum()),
                    f"{split}_auc": estimate.auc,
                    f"{split}_auc_ci_low": estimate.ci_low,
                    f"{split}_auc_ci_high": estimate.ci_high,
                    f"{split}_auc_ci_method": estimate.method,
                }
            )
            if key == plan.primary:
                row[f"{split}_compared_with"] = REFERENCE
            elif key in plan.comparisons:
                row.update(
                    _paired(
                        labels,
                        scores[reference],
                        score_b=scores[name],
                        patients=patients,
                        split=split,
                        reference=reference,
                        level=confidence_level,
                        n_bootstrap=n_bootstrap,
                        seed=seed,
                    )
                )
                family.append((name, row[f"{split}_p_value"]))
        if split == reader_split:
            position = pd.Series(np.arange(len(study_ids)), index=study_ids)
            reference = primary_runs[0]
            for reader, scored in readers.groupby("reader"):
                index = position.loc[scored["study_id"]].to_numpy()
                y, reader_scores = labels[index], scored["score"].to_numpy()
                sub_patients = None if patients is None else patients[index]
                try:
                    estimate = _auc_estimate(y, reader_scores, sub_patients, confidence_level)
                except ValueError as err:
                    raise EvaluationInputError(
                        f"reader {reader!r}, split {split!r}: {err}"
                    ) from err
                row = rows[f"reader:{reader}"]
                row.update(
                    {
                        f"{split}_n": len(y),
                        f"{split}_n_positive": int(y.sum()),
                        f"{split}_auc": estimate.auc,
                        f"{split}_auc_ci_low": estimate.ci_low,
                        f"{split}_auc_ci_high": estimate.ci_high,
                        f"{split}_auc_ci_method": estimate.method,
                    }
                )
                if f"reader:{reader}" in plan.comparisons:
                    row.update(
                        _paired(
                            y,
                            scores[reference][index],
                            score_b=reader_scores,
                            patients=sub_patients,
                            split=split,
                            reference=reference,
                            level=confidence_level,
                            n_bootstrap=n_bootstrap,
                            seed=seed,
                        )
                    )
                    # The primary model on exactly the reader's studies, like for like.
                    row[f"{split}_reference_auc_same_studies"] = row.pop(f"{split}_auc_a")
                    family.append((f"reader:{reader}", row[f"{split}_p_value"]))
        if family:
            adjusted = holm_adjust([p for _, p in family])
            for (key, _), p_holm in zip(family, adjusted, strict=True):
                rows[key][f"{split}_p_value_holm"] = float(p_holm)
    for row in rows.values():
        for split in TEST_SPLITS:
            row.pop(f"{split}_auc_a", None)
    table = pd.DataFrame(list(rows.values()))
    table.attrs["plan"] = plan
    if readers is not None:
        table.attrs["readers_excluded_studies"] = int(readers.attrs.get("excluded_studies", 0))
    # Counts stay integers in the CSV even where a row has none (a reader on internal_test).
    for column in table.columns:
        if column.endswith(("_n", "_n_positive", "_n_compared")):
            table[column] = table[column].astype("Int64")
    return table


def _auc_estimate(labels, scores, patients, level):
    """Clustered AUC CI; with fewer than 2 patients of a class (2 positive studies of one
    patient) the study-level DeLong CI, its method saying so."""
    try:
        return clustered_auc(labels, scores, patients, level)
    except ValueError:
        if patients is None:
            raise
        fallback = clustered_auc(labels, scores, None, level)
        return dataclasses.replace(fallback, method="delong, study level (too few patients)")


def _paired(
    labels, score_a, *, score_b, patients, split, reference, level, n_bootstrap, seed
) -> dict:
    """Obuchowski's paired test of the primary (a) against b, and the bootstrap CI of the
    AUC difference a - b (patients resampled, both AUCs on the same resample)."""
    method = "obuchowski paired" if patients is not None else "delong paired"
    try:
        try:
            test = clustered_paired_test(labels, score_a, score_b, patients)
        except ValueError:
            if patients is None:
                raise
            # Fewer than 2 patients of a class: the study-level test, and the method says so.
            test = clustered_paired_test(labels, score_a, score_b, None)
            method = "delong paired, study level (too few patients)"
    except ValueError as err:
        raise EvaluationInputError(
            f"split {split!r}, comparison with {reference!r}: {err}"
        ) from err
    result = {
        f"{split}_compared_with": reference,
        f"{split}_p_value": test.p_value,
        f"{split}_n_compared": test.n,
        f"{split}_auc_difference": test.difference,
        f"{split}_auc_a": test.auc_a,
        f"{split}_p_method": method,
    }
    if n_bootstrap > 0:
        labels = np.asarray(labels)
        a, b = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
        boot = patient_index_bootstrap(
            lambda i: _auc_unchecked(labels[i], a[i]) - _auc_unchecked(labels[i], b[i]),
            labels,
            patients,
            n_resamples=n_bootstrap,
            confidence_level=level,
            seed=seed,
        )
        result[f"{split}_auc_difference_ci_low"] = float(boot.ci_low[0])
        result[f"{split}_auc_difference_ci_high"] = float(boot.ci_high[0])
    return result


def format_comparison_markdown(table: pd.DataFrame, confidence_level: float = 0.95) -> str:
    """The comparison as a Markdown table, with footnotes on the plan, tests and correction."""
    splits = [s for s in TEST_SPLITS if f"{s}_auc" in table.columns]
    level = f"{100 * confidence_level:g}%"
    headers = ["Model"]
    for split in splits:
        headers += [f"{SPLIT_TITLES[split]} AUC ({level} CI)", "difference (CI)", "P (Holm)"]
    rows = []
    for record in table.to_dict("records"):
        cells = [record["name"] if record["kind"] == "model" else f"Reader: {record['name']}"]
        for split in splits:
            auc = record.get(f"{split}_auc")
            cells.append(
                format_ci(
                    auc, (record.get(f"{split}_auc_ci_low"), record.get(f"{split}_auc_ci_high"))
                )
            )
            if record.get(f"{split}_compared_with") == REFERENCE:
                cells += ["primary", REFERENCE]
            else:
                cells.append(
                    format_ci(
                        record.get(f"{split}_auc_difference"),
                        (
                            record.get(f"{split}_auc_difference_ci_low"),
                            record.get(f"{split}_auc_difference_ci_high"),
                        ),
                    )
                )
                cells.append(format_p_value(record.get(f"{split}_p_value_holm")))
        rows.append(cells)
    plan = table.attrs.get("plan")
    notes = []
    if plan is not None:
        notes.append(
            f"Primary model (pre-specified): {plan.primary}; comparisons: "
            f"{', '.join(plan.comparisons) or 'none'}."
        )
    for split in splits:
        models = table[(table["kind"] == "model") & table[f"{split}_n"].notna()]
        n_positive = models[f"{split}_n_positive"]
        if len(models):
            notes.append(
                f"{SPLIT_TITLES[split]}: {int(models[f'{split}_n'].iloc[0])} studies, "
                f"{int(n_positive.iloc[0])} positive."
            )
        readers = table[(table["kind"] == "reader") & table[f"{split}_n"].notna()]
        for record in readers.to_dict("records"):
            same = record.get(f"{split}_reference_auc_same_studies")
            if same is not None and same == same:
                notes.append(
                    f"Reader {record['name']} scored {int(record[f'{split}_n'])} "
                    f"{SPLIT_TITLES[split].lower()} studies; the primary model's AUC "
                    f"on the same studies is {same:.3f}."
                )
    left_out = table.attrs.get("readers_excluded_studies", 0)
    if left_out:
        notes.append(
            f"Reader comparison without {left_out} reader-scored "
            f"{'study' if left_out == 1 else 'studies'} that the runs excluded (excluded.csv, "
            "e.g. not assessable) and no model scored."
        )
    methods = {m for s in splits for m in table.get(f"{s}_auc_ci_method", pd.Series()).dropna()}
    clustered = "obuchowski" in methods
    notes.append(
        f"AUC {level} CI: {'clustered by patient (Obuchowski 1997)' if clustered else 'DeLong'}"
        ". Difference: primary minus this row's AUC, with its patient-bootstrap percentile CI. "
        f"P: two-sided paired {'Obuchowski' if clustered else 'DeLong'} test against the "
        "primary model on the same studies; Holm-corrected over exactly the pre-specified "
        "comparisons within a test set."
    )
    return markdown_table(headers, rows) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _seed_text(seed) -> str:
    """A seed as written in the config: 2, not 2.0 (pandas makes the column float)."""
    if seed is None or seed != seed:
        return "?"
    try:
        return str(int(seed)) if float(seed).is_integer() else str(seed)
    except (TypeError, ValueError):
        return str(seed)


def seed_summary(table: pd.DataFrame, confidence_level: float = 0.95) -> tuple[pd.DataFrame, str]:
    """Per model: number of runs, mean +- SD (n - 1) of the AUC per test split, and each run's
    AUC with its CI (seed in brackets). Returns the table and its Markdown."""
    models = table[table["kind"] == "model"]
    splits = [s for s in TEST_SPLITS if f"{s}_auc" in table.columns]
    records, rows = [], []
    level = f"{100 * confidence_level:g}%"
    for key, group in models.groupby("model", sort=False):
        record = {"model": key, "n_runs": len(group)}
        cells = [key, str(len(group))]
        for split in splits:
            aucs = group[f"{split}_auc"].dropna()
            mean = float(aucs.mean()) if len(aucs) else None
            sd = float(aucs.std(ddof=1)) if len(aucs) > 1 else None
            record.update({f"{split}_auc_mean": mean, f"{split}_auc_sd": sd})
            each = "; ".join(
                f"{format_ci(r[f'{split}_auc'], (r[f'{split}_auc_ci_low'], r[f'{split}_auc_ci_high']))}"  # noqa: E501
                f" [seed {_seed_text(r.get('seed'))}]"
                for r in group.to_dict("records")
                if r.get(f"{split}_auc") == r.get(f"{split}_auc")
                and r.get(f"{split}_auc") is not None
            )
            cells += [
                "-" if mean is None else f"{mean:.3f}" + ("" if sd is None else f" +- {sd:.3f}"),
                each or "-",
            ]
        records.append(record)
        rows.append(cells)
    headers = ["Model", "runs"]
    for split in splits:
        headers += [f"{SPLIT_TITLES[split]} AUC mean +- SD", f"each run: AUC ({level} CI) [seed]"]
    return pd.DataFrame(records), markdown_table(headers, rows) + "\n"


def compare_runs(
    run_dirs: Sequence[str | Path],
    readers_path: str | Path | None = None,
    out_dir: str | Path = "comparison",
    confidence_level: float = 0.95,
    reliability_bins: int = 10,
    primary: str | None = None,
    comparisons: Sequence[str] | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> ComparisonResult:
    """Load runs (and readers), build the table, write ``comparison.csv``, ``comparison.md``,
    ``seeds.csv`` (mean +- SD per model), ``roc_<test split>.png`` (all models, readers'
    operating points) and ``reliability.png``. ``primary`` and ``comparisons`` are the
    pre-specified analysis (see :func:`plan_comparisons`); None takes them from the runs'
    config.yaml (:func:`planned_analysis`, default ``fusion_all`` against all others)."""
    if not run_dirs:
        raise EvaluationInputError("compare needs at least one run folder")
    runs = [load_run(d) for d in run_dirs]
    readers = None
    if readers_path is not None:
        excluded = set().union(*(load_excluded(r.path) for r in runs))
        readers = load_readers(readers_path, pd.concat([r.predictions for r in runs]), excluded)
    configured_primary, configured_comparisons = planned_analysis(runs)
    table = build_comparison_table(
        runs,
        readers,
        confidence_level,
        primary or configured_primary,
        comparisons if comparisons is not None else configured_comparisons,
        n_bootstrap,
        seed,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _display_names(runs, [model_key(r) for r in runs])
    thresholds = {}
    for name, run in zip(names, runs, strict=True):
        val = run.split("val")
        try:  # the operating point a run would use: its own validation threshold
            thresholds[name] = select_threshold(val["label"], val["probability"])
        except ValueError:
            thresholds[name] = None  # no usable val split: the curve is drawn without a point
    files = {}
    reader_split = _reader_split(readers, runs) if readers is not None else None
    panels = {}
    for split in TEST_SPLITS:
        aligned = _aligned_split(runs, names, split)
        if aligned is None:
            continue
        labels, study_ids, scores, _ = aligned
        series = [ROCSeries(n, labels, s, thresholds[n]) for n, s in scores.items()]
        reader_points = []
        if split == reader_split:
            position = pd.Series(np.arange(len(study_ids)), index=study_ids)
            for reader, scored in readers.groupby("reader"):
                index = position.loc[scored["study_id"]].to_numpy()
                reader_points.append(
                    ReaderPoints(f"Reader {reader}", labels[index], scored["score"].to_numpy())
                )
        files[f"roc_{split}"] = plot_roc(
            series, out_dir / f"roc_{split}.png", f"{SPLIT_TITLES[split]}: ROC", reader_points
        )
        panels[SPLIT_TITLES[split]] = [(n, labels, s) for n, s in scores.items()]
    files["reliability"] = plot_reliability(panels, out_dir / "reliability.png", reliability_bins)
    markdown = format_comparison_markdown(table, confidence_level)
    seeds_table, seeds_markdown = seed_summary(table, confidence_level)
    if (seeds_table["n_runs"] > 1).any():
        markdown += "\n## Runs per model (seeds)\n\n" + seeds_markdown
    files["csv"] = out_dir / "comparison.csv"
    write_text_atomic(files["csv"], neutralise_formulas(table).to_csv(index=False))
    files["seeds_csv"] = write_text_atomic(
        out_dir / "seeds.csv", neutralise_formulas(seeds_table).to_csv(index=False)
    )
    images = "\n".join(f"![{p.stem}]({p.name})" for k, p in files.items() if p.suffix == ".png")
    files["markdown"] = write_text_atomic(
        out_dir / "comparison.md", "# Model comparison\n\n" + markdown + "\n" + images + "\n"
    )
    return ComparisonResult(table, markdown, files)
