"""Read and validate the evaluation inputs: a run folder's predictions and a readers CSV.

Every error is an :class:`EvaluationInputError` whose message names the file, the column and
the offending rows, so a bad file can be fixed without reading code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from osteo.constants import EVALUATED_SPLITS, SPLITS, TEST_SPLITS

__all__ = [
    "EVALUATED_SPLITS",
    "KNOWN_SPLITS",
    "TEST_SPLITS",
    "EvaluationInputError",
    "PREDICTION_COLUMNS",
    "READER_COLUMNS",
    "Run",
    "load_predictions",
    "load_readers",
    "load_excluded",
    "load_run",
    "run_name",
]

PREDICTION_COLUMNS = ("study_id", "split", "probability", "label")
OPTIONAL_PREDICTION_COLUMNS = (
    "patient_id_hash",
    "sex",
    "age",
    "site",
    "study_date",
    "tscore",
    "tscore_pred",
    "probability_uncorrected",
)
READER_COLUMNS = ("study_id", "reader", "score")
KNOWN_SPLITS = SPLITS


class EvaluationInputError(ValueError):
    """A predictions, readers or config file is missing or malformed (message names it)."""


def _rows(mask: pd.Series | np.ndarray, limit: int = 5) -> str:
    """Data row numbers (1 = first row after the header) of a mask, a few at most."""
    rows = (np.flatnonzero(np.asarray(mask)) + 1).tolist()
    shown = ", ".join(map(str, rows[:limit]))
    return f"row(s) {shown}" + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _read_csv(path: Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise EvaluationInputError(f"{path}: {what} file not found")
    try:
        # study ids stay strings ("007" must not become 7) so they match across files.
        table = pd.read_csv(
            path,
            dtype={
                "study_id": str,
                "patient_id_hash": str,
                "reader": str,
                "split": str,
                "sex": str,
                "site": str,
            },
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise EvaluationInputError(f"{path}: cannot read {what} CSV: {err}") from err
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise EvaluationInputError(
            f"{path}: missing column(s) {missing}; a {what} file needs "
            f"{list(required)}, found {list(table.columns)}"
        )
    if table.empty:
        raise EvaluationInputError(f"{path}: no rows")
    blank_ids = table["study_id"].isna() | (table["study_id"].str.strip() == "")
    if blank_ids.any():
        raise EvaluationInputError(f"{path}: column 'study_id' is empty at {_rows(blank_ids)}")
    table["study_id"] = table["study_id"].str.strip()
    return table


def _numeric(table: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        examples = table.loc[bad, column].head(3).tolist()
        raise EvaluationInputError(
            f"{path}: column '{column}' needs a finite number at {_rows(bad)} (found {examples})"
        )
    return values.astype(float)


def load_predictions(path: str | Path) -> pd.DataFrame:
    """Read ``predictions.csv`` (``study_id, split, probability, label`` [+ ``patient_id_hash,
    sex, age``]) and check it: known split names, probabilities in [0, 1], 0/1 labels, no
    duplicate study ids. Returns the table with numeric ``probability`` and int ``label``.
    """
    path = Path(path)
    table = _read_csv(path, PREDICTION_COLUMNS, "predictions")
    table["split"] = table["split"].str.strip()
    unknown = ~table["split"].isin(KNOWN_SPLITS)
    if unknown.any():
        names = sorted(set(table.loc[unknown, "split"].astype(str)))
        raise EvaluationInputError(
            f"{path}: column 'split' has unknown value(s) {names} at "
            f"{_rows(unknown)}; expected one of {list(KNOWN_SPLITS)}"
        )
    table["probability"] = _numeric(table, "probability", path)
    outside = (table["probability"] < 0) | (table["probability"] > 1)
    if outside.any():
        raise EvaluationInputError(
            f"{path}: column 'probability' must be in [0, 1] "
            f"(found {table.loc[outside, 'probability'].head(3).tolist()} "
            f"at {_rows(outside)})"
        )
    labels = _numeric(table, "label", path)
    not_binary = ~labels.isin((0.0, 1.0))
    if not_binary.any():
        raise EvaluationInputError(
            f"{path}: column 'label' must be 0 or 1 "
            f"(found {labels[not_binary].head(3).tolist()} "
            f"at {_rows(not_binary)})"
        )
    table["label"] = labels.astype(int)
    duplicated = table["study_id"].duplicated(keep=False)
    if duplicated.any():
        raise EvaluationInputError(
            f"{path}: study_id must be unique; {table.loc[duplicated, 'study_id'].nunique()} "
            f"id(s) repeat, e.g. {table.loc[duplicated, 'study_id'].iloc[0]!r} at "
            f"{_rows(duplicated)}"
        )
    if "patient_id_hash" in table.columns:
        blank = table["patient_id_hash"].isna()
        if blank.any():
            raise EvaluationInputError(
                f"{path}: column 'patient_id_hash' is empty at "
                f"{_rows(blank)}; fill it for every row or drop the column"
            )
    if "age" in table.columns:  # missing ages are allowed: they form the "missing" age band
        table["age"] = pd.to_numeric(table["age"], errors="coerce")
    return table


def load_readers(
    path: str | Path,
    predictions: pd.DataFrame | None = None,
    excluded: Iterable[str] = (),
) -> pd.DataFrame:
    """Read a readers CSV (``study_id, reader, score``; 5-point scale, higher = more likely
    osteoporosis). Checks numeric scores, one score per reader and study, and, given
    ``predictions``, that every study id is one of theirs.

    ``excluded``: study ids the runs left out (their ``excluded.csv``, e.g. not assessable).
    Readers' scores of those studies are dropped, because a model and a reader must be
    compared on the same studies; how many is kept in ``attrs["excluded_studies"]`` for the
    report. Any other unknown id is an error (a wrong file or a typo).
    """
    path = Path(path)
    table = _read_csv(path, READER_COLUMNS, "readers")
    blank = table["reader"].isna() | (table["reader"].str.strip() == "")
    if blank.any():
        raise EvaluationInputError(f"{path}: column 'reader' is empty at {_rows(blank)}")
    table["reader"] = table["reader"].str.strip()
    table["score"] = _numeric(table, "score", path)
    duplicated = table.duplicated(["study_id", "reader"], keep=False)
    if duplicated.any():
        first = table.loc[duplicated].iloc[0]
        raise EvaluationInputError(
            f"{path}: reader {first['reader']!r} scores study "
            f"{first['study_id']!r} more than once ({_rows(duplicated)})"
        )
    table.attrs["excluded_studies"] = 0
    if predictions is not None:
        known = set(predictions["study_id"])
        left_out = set(excluded) - known
        unknown = ~table["study_id"].isin(known)
        if unknown.any():
            # Runs name studies by keyed pseudonyms (osteo.privacy); readers' files by the ids.
            from osteo.privacy import pseudonym

            named = known | left_out
            mapped = table["study_id"].map(lambda s: s if s in named else pseudonym(s, "study"))
            table["study_id"] = mapped.where(mapped.isin(named), table["study_id"])
            unknown = ~table["study_id"].isin(known)
        dropped = unknown & table["study_id"].isin(left_out)
        if dropped.any():
            table.attrs["excluded_studies"] = int(table.loc[dropped, "study_id"].nunique())
            table = table.loc[~dropped].reset_index(drop=True)
            unknown = ~table["study_id"].isin(known)
        if unknown.any():
            ids = table.loc[unknown, "study_id"].unique()
            raise EvaluationInputError(
                f"{path}: {len(ids)} study_id(s) not in the predictions, e.g. {ids[:3].tolist()} "
                f"({_rows(unknown)}); readers must score studies the models predicted"
            )
    return table


def load_excluded(run_dir: str | Path) -> set[str]:
    """Study ids a run left out (its ``excluded.csv``; empty when there is none)."""
    path = Path(run_dir) / "excluded.csv"
    if not path.is_file():
        return set()
    table = pd.read_csv(path, dtype=str)
    if "study_id" not in table.columns:
        raise EvaluationInputError(f"{path}: no 'study_id' column")
    return set(table["study_id"].dropna())


def run_name(run_dir: str | Path) -> str:
    """A run's model name: ``name`` in its config.yaml, else ``model.head``, else the folder."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        try:
            config = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError as err:
            raise EvaluationInputError(f"{config_path}: not valid YAML: {err}") from err
        if isinstance(config, dict):
            if config.get("name"):
                return str(config["name"])
            model = config.get("model")
            if isinstance(model, dict) and model.get("head"):
                return str(model["head"])
    return run_dir.resolve().name


@dataclass(frozen=True)
class Run:
    """A run folder's name, path and validated predictions."""

    name: str
    path: Path
    predictions: pd.DataFrame

    def split(self, split: str) -> pd.DataFrame:
        return self.predictions[self.predictions["split"] == split]


def load_run(run_dir: str | Path) -> Run:
    """Load a run folder (``config.yaml`` optional, ``predictions.csv`` required)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EvaluationInputError(f"{run_dir}: run folder not found")
    return Run(run_name(run_dir), run_dir, load_predictions(run_dir / "predictions.csv"))
