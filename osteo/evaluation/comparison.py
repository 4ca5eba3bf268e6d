"""The reference's comparison table: several runs (and readers) on the same test sets.

Per test set, every model's AUC with its DeLong CI; the best model (highest AUC) is the
reference, and every other model and every reader is compared with it by a paired DeLong test
on the same studies. The p-values of one test set form one family, Holm-corrected together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from osteo.evaluation.formatting import format_ci, format_p_value, markdown_table
from osteo.evaluation.plots import ReaderPoints, ROCSeries, plot_reliability, plot_roc
from osteo.evaluation.report import SPLIT_TITLES, write_text_atomic
from osteo.evaluation.runs import (
    TEST_SPLITS,
    EvaluationInputError,
    Run,
    load_readers,
    load_run,
)
from osteo.evaluation.stats import delong_auc, delong_paired_test, holm_adjust
from osteo.evaluation.thresholds import select_threshold
from osteo.tables import neutralise_formulas

__all__ = ["ComparisonResult", "build_comparison_table", "compare_runs",
           "format_comparison_markdown"]

REFERENCE = "reference"


@dataclass
class ComparisonResult:
    """The comparison table (one row per model or reader) and the files written."""

    table: pd.DataFrame
    markdown: str
    files: dict[str, Path] = field(default_factory=dict)


def _unique_names(runs: Sequence[Run]) -> list[str]:
    """Model names, made unique with the folder name when two runs share one (e.g. "run")."""
    names = [r.name for r in runs]
    names = [f"{n} ({r.path.name})" if names.count(n) > 1 else n
             for n, r in zip(names, runs, strict=True)]
    # Same name and same folder name (runs/a/x, runs/b/x): fall back to the full path.
    names = [f"{r.name} ({r.path})" if names.count(n) > 1 else n
             for n, r in zip(names, runs, strict=True)]
    if len(set(names)) < len(names):
        raise EvaluationInputError(f"the same run folder is given twice: {names}")
    return names


def _aligned_split(runs: Sequence[Run], names: Sequence[str], split: str):
    """Labels (N,), study ids (N,) and scores {name: (N,)} of the runs having ``split``,
    aligned on the same studies. Different study sets cannot be compared pairwise."""
    parts = {n: r.split(split).set_index("study_id") for n, r in zip(names, runs, strict=True)
             if (r.predictions["split"] == split).any()}
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
                "comparison needs the same test set")
        disagree = part.loc[first.index, "label"].to_numpy() != first["label"].to_numpy()
        if disagree.any():
            raise EvaluationInputError(
                f"split {split!r}: runs {first_name!r} and {name!r} disagree on the label of "
                f"{int(disagree.sum())} studies, e.g. {first.index[disagree][0]!r}")
    study_ids = first.index.to_numpy()
    scores = {n: p.loc[study_ids, "probability"].to_numpy() for n, p in parts.items()}
    return first["label"].to_numpy(), study_ids, scores


def _reader_split(readers: pd.DataFrame, runs: Sequence[Run]) -> str:
    """The one test split whose studies the readers scored."""
    split_of = pd.concat([r.predictions[["study_id", "split"]] for r in runs])
    split_of = split_of.drop_duplicates().set_index("study_id")["split"]
    splits = readers["study_id"].map(split_of.groupby(level=0).first())
    counts = splits.value_counts().to_dict()
    if len(counts) != 1 or next(iter(counts)) not in TEST_SPLITS:
        raise EvaluationInputError(f"readers must score the studies of one test split "
                                   f"{list(TEST_SPLITS)}; their studies fall in {counts}")
    return next(iter(counts))


def build_comparison_table(
    runs: Sequence[Run],
    readers: pd.DataFrame | None = None,
    confidence_level: float = 0.95,
) -> pd.DataFrame:
    """One row per model, then one per reader: per test split ``n``, ``n_positive``, ``auc``,
    ``auc_ci_low/high``, ``p_value`` (paired DeLong vs the split's best model), ``p_value_holm``,
    ``compared_with`` and ``n_compared`` (studies in the paired test)."""
    if not any(r.predictions["split"].isin(TEST_SPLITS).any() for r in runs):
        raise EvaluationInputError(f"none of the runs has test predictions {list(TEST_SPLITS)}: "
                                   f"{[str(r.path) for r in runs]}")
    names = _unique_names(runs)
    rows = {n: {"kind": "model", "name": n, "source": str(r.path)}
            for n, r in zip(names, runs, strict=True)}
    reader_split = _reader_split(readers, runs) if readers is not None else None
    for reader in ([] if readers is None else sorted(readers["reader"].unique())):
        rows[f"reader:{reader}"] = {"kind": "reader", "name": reader, "source": "readers"}
    for split in TEST_SPLITS:
        aligned = _aligned_split(runs, names, split)
        if aligned is None:
            if split == reader_split:
                raise EvaluationInputError(f"readers score {split!r} studies but no run has "
                                           f"{split!r} predictions")
            continue
        labels, study_ids, scores = aligned
        estimates = {}
        for name, score in scores.items():
            try:
                estimates[name] = delong_auc(labels, score, confidence_level)
            except ValueError as err:
                raise EvaluationInputError(f"run {name!r}, split {split!r}: {err}") from err
        best = max(estimates, key=lambda n: estimates[n].auc)  # ties: the first listed run
        family = []  # (row key, raw p) of every comparison with the best model in this split
        for name, estimate in estimates.items():
            row = rows[name]
            row.update({f"{split}_n": len(labels), f"{split}_n_positive": int(labels.sum()),
                        f"{split}_auc": estimate.auc, f"{split}_auc_ci_low": estimate.ci_low,
                        f"{split}_auc_ci_high": estimate.ci_high,
                        f"{split}_compared_with": REFERENCE if name == best else best})
            if name != best:
                test = delong_paired_test(labels, scores[best], scores[name])
                row.update({f"{split}_p_value": test.p_value, f"{split}_n_compared": test.n})
                family.append((name, test.p_value))
        if split == reader_split:
            position = pd.Series(np.arange(len(study_ids)), index=study_ids)
            for reader, scored in readers.groupby("reader"):
                index = position.loc[scored["study_id"]].to_numpy()
                y, reader_scores = labels[index], scored["score"].to_numpy()
                try:
                    estimate = delong_auc(y, reader_scores, confidence_level)
                    test = delong_paired_test(y, scores[best][index], reader_scores)
                except ValueError as err:
                    raise EvaluationInputError(f"reader {reader!r}, split {split!r}: {err}") \
                        from err
                rows[f"reader:{reader}"].update({
                    f"{split}_n": len(y), f"{split}_n_positive": int(y.sum()),
                    f"{split}_auc": estimate.auc, f"{split}_auc_ci_low": estimate.ci_low,
                    f"{split}_auc_ci_high": estimate.ci_high, f"{split}_compared_with": best,
                    f"{split}_p_value": test.p_value, f"{split}_n_compared": test.n,
                    # The best model on exactly the reader's studies, for a like-for-like read.
                    f"{split}_reference_auc_same_studies": test.auc_a})
                family.append((f"reader:{reader}", test.p_value))
        if family:
            adjusted = holm_adjust([p for _, p in family])
            for (key, _), p_holm in zip(family, adjusted, strict=True):
                rows[key][f"{split}_p_value_holm"] = float(p_holm)
    table = pd.DataFrame(list(rows.values()))
    # Counts stay integers in the CSV even where a row has none (a reader on internal_test).
    for column in table.columns:
        if column.endswith(("_n", "_n_positive", "_n_compared")):
            table[column] = table[column].astype("Int64")
    return table


def format_comparison_markdown(table: pd.DataFrame, confidence_level: float = 0.95) -> str:
    """The comparison as a Markdown table, with a footnote on the test and its correction."""
    splits = [s for s in TEST_SPLITS if f"{s}_auc" in table.columns]
    level = f"{100 * confidence_level:g}%"
    headers = ["Model"]
    for split in splits:
        headers += [f"{SPLIT_TITLES[split]} AUC ({level} CI)", "P (Holm)"]
    rows = []
    for record in table.to_dict("records"):
        cells = [record["name"] if record["kind"] == "model" else f"Reader: {record['name']}"]
        for split in splits:
            auc = record.get(f"{split}_auc")
            cells.append(format_ci(auc, (record.get(f"{split}_auc_ci_low"),
                                         record.get(f"{split}_auc_ci_high"))))
            cells.append(REFERENCE if record.get(f"{split}_compared_with") == REFERENCE
                         else format_p_value(record.get(f"{split}_p_value_holm")))
        rows.append(cells)
    notes = []
    for split in splits:
        models = table[(table["kind"] == "model") & table[f"{split}_n"].notna()]
        n_positive = models[f"{split}_n_positive"]
        if len(models):
            notes.append(f"{SPLIT_TITLES[split]}: {int(models[f'{split}_n'].iloc[0])} studies, "
                         f"{int(n_positive.iloc[0])} positive.")
        readers = table[(table["kind"] == "reader") & table[f"{split}_n"].notna()]
        for record in readers.to_dict("records"):
            same = record[f"{split}_reference_auc_same_studies"]
            notes.append(f"Reader {record['name']} scored {int(record[f'{split}_n'])} "
                         f"{SPLIT_TITLES[split].lower()} studies; the reference model's AUC on "
                         f"the same studies is {same:.3f}.")
    notes.append(f"AUC {level} CI by DeLong's method. P: two-sided paired DeLong test against the "
                 "best model of the same test set (\"reference\"), on the same studies; "
                 "Holm-corrected over all comparisons within a test set.")
    return markdown_table(headers, rows) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def compare_runs(
    run_dirs: Sequence[str | Path],
    readers_path: str | Path | None = None,
    out_dir: str | Path = "comparison",
    confidence_level: float = 0.95,
    reliability_bins: int = 10,
) -> ComparisonResult:
    """Load runs (and readers), build the table, write ``comparison.csv``, ``comparison.md``,
    ``roc_<test split>.png`` (all models, readers' operating points) and ``reliability.png``."""
    if not run_dirs:
        raise EvaluationInputError("compare needs at least one run folder")
    runs = [load_run(d) for d in run_dirs]
    readers = None
    if readers_path is not None:
        readers = load_readers(readers_path, pd.concat([r.predictions for r in runs]))
    table = build_comparison_table(runs, readers, confidence_level)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _unique_names(runs)
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
        labels, study_ids, scores = aligned
        series = [ROCSeries(n, labels, s, thresholds[n]) for n, s in scores.items()]
        reader_points = []
        if split == reader_split:
            position = pd.Series(np.arange(len(study_ids)), index=study_ids)
            for reader, scored in readers.groupby("reader"):
                index = position.loc[scored["study_id"]].to_numpy()
                reader_points.append(ReaderPoints(f"Reader {reader}", labels[index],
                                                  scored["score"].to_numpy()))
        files[f"roc_{split}"] = plot_roc(series, out_dir / f"roc_{split}.png",
                                         f"{SPLIT_TITLES[split]}: ROC", reader_points)
        panels[SPLIT_TITLES[split]] = [(n, labels, s) for n, s in scores.items()]
    files["reliability"] = plot_reliability(panels, out_dir / "reliability.png",
                                            reliability_bins)
    markdown = format_comparison_markdown(table, confidence_level)
    files["csv"] = out_dir / "comparison.csv"
    write_text_atomic(files["csv"], neutralise_formulas(table).to_csv(index=False))
    images = "\n".join(f"![{p.stem}]({p.name})" for k, p in files.items() if k != "csv")
    files["markdown"] = write_text_atomic(out_dir / "comparison.md",
                                          "# Model comparison\n\n" + markdown + "\n" + images
                                          + "\n")
    return ComparisonResult(table, markdown, files)
