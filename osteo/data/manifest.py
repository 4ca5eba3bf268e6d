"""The manifest: one CSV row per radiograph, validated in full, and patient-level splits.

Columns (docs/architecture.md): ``study_id, patient_id, image_path, study_date, site, age,
sex, weight, tscore``; optional ``mask_path, label, split``. Paths are relative to the
manifest's folder unless absolute. ``label`` is ``tscore <= -2.5`` (WHO osteoporosis) unless given.

Validation collects every problem before raising, so a user fixes a file in one pass.

The CSV is parsed by ``read_manifest_table`` with Python's ``csv`` module, not pandas'
guessing: a duplicate header is refused (pandas would rename it ``x.1`` and ignore it), a row
with more or fewer fields than the header is reported as exactly that (pandas would shift every
column, or take the first field as an index), the file and every field have size caps, and NUL
or other control characters are refused. Ids may not begin with ``= + - @`` (a spreadsheet
would run them as formulas), and image/mask paths must lie inside the manifest's folder unless
``data.allow_outside_paths=true``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from osteo.constants import SPLITS
from osteo.privacy import pseudonym
from osteo.tables import write_csv

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "SPLIT_NAMES",
    "OSTEOPOROSIS_TSCORE",
    "ManifestError",
    "ManifestProblem",
    "load_manifest",
    "validate_manifest",
    "make_splits",
    "write_splits",
    "read_splits",
    "apply_splits",
    "summarize",
    "format_summary",
    "hash_identifier",
    "read_manifest_table",
    "MAX_MANIFEST_BYTES",
    "MAX_FIELD_CHARS",
]

REQUIRED_COLUMNS = (
    "study_id",
    "patient_id",
    "image_path",
    "study_date",
    "site",
    "age",
    "sex",
    "weight",
    "tscore",
)
OPTIONAL_COLUMNS = ("mask_path", "label", "split")
SPLIT_NAMES = SPLITS
# Development studies of a patient who is also in a test cohort: kept out of training so no
# patient is ever in two splits; counted and reported, never silently dropped.
EXCLUDED_SPLIT = "excluded_overlap"
OSTEOPOROSIS_TSCORE = -2.5
# 1.5 million rows of ~130 bytes; a larger file is more likely the wrong file than a cohort.
MAX_MANIFEST_BYTES = 200 * 1024 * 1024
# Long enough for any real path (PATH_MAX is 4096 on Linux), short enough to print.
MAX_FIELD_CHARS = 4096
# How much of a bad value a message shows.
SHOWN_VALUE_CHARS = 80
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FORMULA_LEAD = ("=", "+", "-", "@")
AGE_RANGE = (18.0, 110.0)
WEIGHT_RANGE_KG = (25.0, 250.0)


@dataclass(frozen=True)
class ManifestProblem:
    row: int | None  # 1-based data row (the CSV line is row + 1); None for file-level problems
    column: str | None
    value: object
    expected: str

    def __str__(self) -> str:
        where = "file" if self.row is None else f"row {self.row} (line {self.row + 1})"
        col = f", column '{self.column}'" if self.column else ""
        val = "" if self.value is None else f": got {_shown(self.value)}"
        return f"{where}{col}{val}; expected {self.expected}"


class ManifestError(ValueError):
    """A manifest has problems; ``.problems`` lists all of them."""

    def __init__(self, path: str | Path, problems: Sequence[ManifestProblem], limit: int = 50):
        self.path = Path(path)
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:limit])
        more = len(self.problems) - limit
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{self.path}: {len(self.problems)} problem(s) in the manifest:\n{shown}{tail}"
        )


def _shown(value: object) -> str:
    """``repr`` of a value, cut to ``SHOWN_VALUE_CHARS`` (a 50 MB field is not printed whole)."""
    text = repr(value)
    if len(text) <= SHOWN_VALUE_CHARS:
        return text
    return f"{text[:SHOWN_VALUE_CHARS]}... ({len(str(value))} characters)"


def hash_identifier(value: object, kind: str = "patient") -> str:
    """A keyed pseudonym (``osteo.privacy.pseudonym``): outputs group by patient without
    carrying the identifier, and without the key the hash cannot be reversed by brute force.
    Split assignment never uses it (``make_splits`` orders the ids themselves)."""
    return pseudonym(value, kind)


def _blank(value: object) -> bool:
    return (
        value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""
    )


def _resolve(base: Path, value: str) -> Path:
    path = Path(str(value).strip())
    return path if path.is_absolute() else (base / path)


def _check_number(problems, row, column, value, lo, hi, unit=""):
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(
            ManifestProblem(row, column, value, f"a number between {lo:g} and {hi:g}{unit}")
        )
        return None
    if not (lo <= number <= hi) or np.isnan(number):
        problems.append(
            ManifestProblem(row, column, value, f"a number between {lo:g} and {hi:g}{unit}")
        )
        return None
    return number


def validate_manifest(
    table: pd.DataFrame,
    base_dir: Path,
    require_label: bool = True,
    check_files: bool = True,
    allow_outside_paths: bool = False,
) -> tuple[pd.DataFrame, list[ManifestProblem]]:
    """Check every row and return (a normalised copy, the list of problems)."""
    problems: list[ManifestProblem] = []
    for column in table.columns:
        if _CONTROL.search(str(column)) or len(str(column)) > MAX_FIELD_CHARS:
            problems.append(
                ManifestProblem(None, "header", column, "a column name without control characters")
            )
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    for column in missing:
        problems.append(ManifestProblem(None, column, None, f"a column named '{column}'"))
    if missing:
        return table, problems

    out = table.copy()
    ages, weights, tscores, labels, dates, sexes = [], [], [], [], [], []
    image_paths, mask_paths = [], []
    has_mask = "mask_path" in out.columns
    has_label = "label" in out.columns
    has_split = "split" in out.columns
    base_resolved = Path(base_dir).resolve()
    for i, rec in enumerate(out.to_dict("records")):
        row = i + 1
        unsafe = _unsafe_fields(rec, row)
        problems.extend(unsafe)
        if unsafe:
            # Checking a field with a NUL or a megabyte of text further only repeats the problem.
            bad = {p.column for p in unsafe}
            rec = {k: ("" if k in bad else v) for k, v in rec.items()}
        for column in ("study_id", "patient_id", "image_path", "site"):
            if _blank(rec[column]) and column not in {p.column for p in unsafe}:
                problems.append(ManifestProblem(row, column, rec[column], "a non-empty value"))
        for column in ("study_id", "patient_id"):
            if str(rec[column]).strip().startswith(_FORMULA_LEAD):
                problems.append(
                    ManifestProblem(
                        row,
                        column,
                        rec[column],
                        "an id that does not begin with =, +, - or @ (a spreadsheet opening an "
                        "output would run it as a formula)",
                    )
                )

        date = pd.to_datetime(str(rec["study_date"]).strip(), errors="coerce", format="%Y-%m-%d")
        if pd.isna(date):
            date = pd.to_datetime(str(rec["study_date"]).strip(), errors="coerce", format="%Y%m%d")
        if pd.isna(date):
            problems.append(
                ManifestProblem(
                    row, "study_date", rec["study_date"], "a date as YYYY-MM-DD (or YYYYMMDD)"
                )
            )
        dates.append(date)

        ages.append(_check_number(problems, row, "age", rec["age"], *AGE_RANGE, " years"))
        weights.append(
            _check_number(problems, row, "weight", rec["weight"], *WEIGHT_RANGE_KG, " kg")
        )
        sex = str(rec["sex"]).strip().upper() if not _blank(rec["sex"]) else ""
        if sex not in ("F", "M"):
            problems.append(ManifestProblem(row, "sex", rec["sex"], "'F' or 'M'"))
        sexes.append(sex or None)

        label = None
        if has_label and not _blank(rec["label"]):
            if str(rec["label"]).strip() in ("0", "1", "0.0", "1.0", "True", "False"):
                label = int(float(str(rec["label"]).strip() in ("1", "1.0", "True")))
            else:
                problems.append(ManifestProblem(row, "label", rec["label"], "0 or 1 (or empty)"))
        tscore = None
        if _blank(rec["tscore"]):
            if require_label and label is None:
                problems.append(
                    ManifestProblem(
                        row,
                        "tscore",
                        rec["tscore"],
                        "a numeric T-score (or a 'label' of 0/1) because labels are needed",
                    )
                )
        else:
            tscore = _check_number(problems, row, "tscore", rec["tscore"], -10.0, 10.0)
            if label is None and tscore is not None:
                label = int(tscore <= OSTEOPOROSIS_TSCORE)
        tscores.append(tscore)
        labels.append(label)

        image = _resolve(base_dir, rec["image_path"]) if not _blank(rec["image_path"]) else None
        if image is not None and not allow_outside_paths:
            problems.extend(_outside(row, "image_path", rec["image_path"], image, base_resolved))
        if check_files and image is not None and not image.is_file():
            problems.append(
                ManifestProblem(
                    row,
                    "image_path",
                    rec["image_path"],
                    f"an existing image file (looked for {image})",
                )
            )
        image_paths.append(str(image) if image is not None else None)
        mask = None
        if has_mask and not _blank(rec["mask_path"]):
            mask = _resolve(base_dir, rec["mask_path"])
            if not allow_outside_paths:
                problems.extend(_outside(row, "mask_path", rec["mask_path"], mask, base_resolved))
            if check_files and not mask.is_file():
                problems.append(
                    ManifestProblem(
                        row,
                        "mask_path",
                        rec["mask_path"],
                        f"an existing mask file (looked for {mask})",
                    )
                )
        mask_paths.append(str(mask) if mask is not None else None)
        if has_split and not _blank(rec["split"]) and str(rec["split"]).strip() not in SPLIT_NAMES:
            problems.append(
                ManifestProblem(
                    row, "split", rec["split"], f"one of {', '.join(SPLIT_NAMES)} (or empty)"
                )
            )

    out["study_id"] = out["study_id"].astype(str).str.strip()
    out["patient_id"] = out["patient_id"].astype(str).str.strip()
    out["site"] = out["site"].astype(str).str.strip()
    duplicated = out["study_id"].duplicated(keep="first")
    for i in np.flatnonzero(duplicated.to_numpy()):
        first = int(np.flatnonzero((out["study_id"] == out["study_id"].iloc[i]).to_numpy())[0]) + 1
        problems.append(
            ManifestProblem(
                int(i) + 1,
                "study_id",
                out["study_id"].iloc[i],
                f"a unique study_id (already used in row {first})",
            )
        )

    out["study_date"] = dates
    out["age"] = pd.array(ages, dtype="Float64")
    out["weight"] = pd.array(weights, dtype="Float64")
    out["sex"] = sexes
    out["tscore"] = pd.array(tscores, dtype="Float64")
    out["label"] = pd.array(labels, dtype="Int64")
    out["image_path"] = image_paths
    out["mask_path"] = mask_paths
    if has_split:
        out["split"] = [None if _blank(s) else str(s).strip() for s in out["split"]]

    # One patient, one sex: a mismatch usually means two patients share an identifier.
    sex_per_patient = out.dropna(subset=["sex"]).groupby("patient_id")["sex"].nunique()
    for patient in sex_per_patient[sex_per_patient > 1].index:
        rows = [int(i) + 1 for i in np.flatnonzero((out["patient_id"] == patient).to_numpy())]
        problems.append(
            ManifestProblem(
                rows[0], "sex", f"rows {rows}", "the same sex for every study of one patient_id"
            )
        )
    return out, problems


def _unsafe_fields(rec: dict, row: int) -> list[ManifestProblem]:
    problems = []
    for column, value in rec.items():
        text = "" if value is None else str(value)
        if len(text) > MAX_FIELD_CHARS:
            problems.append(
                ManifestProblem(row, column, value, f"at most {MAX_FIELD_CHARS} characters")
            )
        elif _CONTROL.search(text):
            problems.append(
                ManifestProblem(row, column, value, "text without NUL or other control characters")
            )
    return problems


def _outside(row: int, column: str, value: object, path: Path, base: Path) -> list:
    try:
        path.resolve().relative_to(base)
    except ValueError:
        return [
            ManifestProblem(
                row,
                column,
                value,
                f"a path inside the manifest's folder {base} (it resolves to {path.resolve()}); "
                "set data.allow_outside_paths=true to allow files elsewhere",
            )
        ]
    except (OSError, RuntimeError):  # a symlink loop or an unreadable path
        return [ManifestProblem(row, column, value, "a path that can be resolved")]
    return []


def read_manifest_table(path: str | Path) -> tuple[pd.DataFrame, list[ManifestProblem]]:
    """Parse a manifest CSV as text, strictly; return the table and the file-level problems.

    A row whose field count differs from the header's is reported as that and kept with empty
    fields, so row numbers stay those of the file and no value lands in another column.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, [ManifestProblem(None, None, None, "an existing CSV file")])
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            path,
            [
                ManifestProblem(
                    None, None, f"{size} bytes", f"a file of at most {MAX_MANIFEST_BYTES} bytes"
                )
            ],
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ManifestError(
            path, [ManifestProblem(None, None, str(err), "a UTF-8 encoded CSV file")]
        ) from None
    previous = csv.field_size_limit()
    csv.field_size_limit(MAX_MANIFEST_BYTES)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), skipinitialspace=True))
    except csv.Error as err:
        raise ManifestError(
            path, [ManifestProblem(None, None, str(err), "a readable CSV file")]
        ) from None
    finally:
        csv.field_size_limit(previous)
    records = [r for r in records if r and any(field.strip() for field in r)]
    if not records:
        raise ManifestError(path, [ManifestProblem(None, None, None, "a header row")])
    header = [c.strip() for c in records[0]]
    problems: list[ManifestProblem] = []
    seen: set[str] = set()
    for column in header:
        if column in seen:
            problems.append(
                ManifestProblem(None, column, column, "each column name once in the header")
            )
        seen.add(column)
    if problems:
        return pd.DataFrame(columns=list(dict.fromkeys(header))), problems
    rows = []
    for i, fields in enumerate(records[1:]):
        if len(fields) != len(header):
            problems.append(
                ManifestProblem(
                    i + 1,
                    None,
                    f"{len(fields)} fields",
                    f"{len(header)} fields, one per header column (a comma inside a value "
                    "needs the value in double quotes)",
                )
            )
            fields = [""] * len(header)
        rows.append(fields)
    return pd.DataFrame(rows, columns=header, dtype=str), problems


def load_manifest(
    path: str | Path,
    require_label: bool = True,
    check_files: bool = True,
    allow_outside_paths: bool = False,
) -> pd.DataFrame:
    """Read and validate a manifest; raise ``ManifestError`` listing every problem."""
    path = Path(path)
    table, read_problems = read_manifest_table(path)
    if read_problems and all(p.row is None for p in read_problems):
        raise ManifestError(path, read_problems)
    if table.empty:
        raise ManifestError(path, [ManifestProblem(None, None, None, "at least one data row")])
    out, problems = validate_manifest(
        table, path.resolve().parent, require_label, check_files, allow_outside_paths
    )
    # A row with the wrong field count is reported once, not once per (emptied) field.
    malformed = {p.row for p in read_problems}
    problems = read_problems + [p for p in problems if p.row not in malformed]
    if problems:
        problems.sort(key=lambda p: p.row or 0)
        raise ManifestError(path, problems)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- splits


def _in_date_range(dates: pd.Series, start: str | None, end: str | None) -> np.ndarray:
    mask = np.ones(len(dates), dtype=bool)
    if start:
        mask &= (dates >= pd.Timestamp(start)).to_numpy()
    if end:
        mask &= (dates <= pd.Timestamp(end)).to_numpy()
    return mask


def make_splits(
    manifest: pd.DataFrame,
    internal_test_from: str | None = None,
    internal_test_to: str | None = None,
    internal_test_sites: Iterable[str] = ("A",),
    external_test_sites: Iterable[str] = ("B",),
    val_fraction: float = 0.15,
    seed: int = 0,
) -> pd.Series:
    """Assign every study a split, by patient, so that no patient is in two splits.

    - external_test: studies from ``external_test_sites``;
    - internal_test: studies from ``internal_test_sites`` dated within the range (temporal
      separation, as in the reference); with no range, no internal test set;
    - the remaining (development) patients go to train/val, stratified by the patient's label
      (positive if any study is positive), seeded;
    - development studies of a patient who also has a test study are marked
      ``excluded_overlap``: the test cohorts stay as defined, training never sees a test patient.

    A ``split`` column in the manifest, where filled, overrides the computed split of its row.
    """
    sites = manifest["site"].astype(str)
    external = sites.isin(list(external_test_sites)).to_numpy()
    internal = np.zeros(len(manifest), dtype=bool)
    if internal_test_from or internal_test_to:
        internal = (
            sites.isin(list(internal_test_sites)).to_numpy()
            & _in_date_range(manifest["study_date"], internal_test_from, internal_test_to)
            & ~external
        )
    split = np.full(len(manifest), "", dtype=object)
    split[external] = "external_test"
    split[internal] = "internal_test"

    given = manifest["split"] if "split" in manifest.columns else pd.Series([None] * len(manifest))
    given_mask = given.notna().to_numpy()
    split[given_mask] = given[given_mask].to_numpy()

    patients = manifest["patient_id"].to_numpy()
    test_patients_ext = set(patients[split == "external_test"])
    test_patients_int = set(patients[split == "internal_test"]) - test_patients_ext
    # A patient in both test cohorts stays in the external one (another hospital's images).
    for i in np.flatnonzero(split == "internal_test"):
        if patients[i] in test_patients_ext and not given_mask[i]:
            split[i] = EXCLUDED_SPLIT
    test_patients = test_patients_ext | test_patients_int
    dev = split == ""
    for i in np.flatnonzero(dev):
        if patients[i] in test_patients:
            split[i] = EXCLUDED_SPLIT
    dev = split == ""

    dev_table = pd.DataFrame(
        {"patient_id": patients[dev], "label": manifest["label"].to_numpy()[dev]}
    )
    patient_label = dev_table.groupby("patient_id")["label"].max().fillna(0).astype(int)
    rng = np.random.default_rng(seed)
    val_patients: set[str] = set()
    for _, group in patient_label.groupby(patient_label):
        ids = np.array(sorted(group.index))
        rng.shuffle(ids)
        n_val = int(round(val_fraction * len(ids)))
        val_patients.update(ids[:n_val].tolist())
    for i in np.flatnonzero(dev):
        split[i] = "val" if patients[i] in val_patients else "train"

    result = pd.Series(split, index=manifest.index, name="split")
    check_no_patient_leak(manifest["patient_id"], result)
    return result


def check_no_patient_leak(patient_ids: pd.Series, split: pd.Series) -> None:
    """Raise if any patient has studies in two different splits (excluded rows aside)."""
    table = pd.DataFrame({"patient_id": patient_ids.to_numpy(), "split": split.to_numpy()})
    table = table[table["split"] != EXCLUDED_SPLIT]
    counts = table.groupby("patient_id")["split"].nunique()
    leaked = counts[counts > 1]
    if len(leaked):
        examples = ", ".join(hash_identifier(p) for p in leaked.index[:5])
        raise ValueError(
            f"{len(leaked)} patient(s) have studies in more than one split (patient hashes: "
            f"{examples}); a 'split' column must assign all studies of a patient to one split"
        )


def write_splits(
    manifest: pd.DataFrame, split: pd.Series, path: str | Path, clear_ids: bool = False
) -> Path:
    """Write ``study_id, patient_hash, split``; patient ids are always hashed (keyed), study ids
    too unless ``clear_ids`` (``logger.log_identifiers=true``). ``apply_splits`` reads both."""
    path = Path(path)
    studies = manifest["study_id"].astype(str)
    table = pd.DataFrame(
        {
            "study_id": studies.to_numpy()
            if clear_ids
            else [pseudonym(s, "study") for s in studies],
            "patient_hash": [hash_identifier(p) for p in manifest["patient_id"]],
            "split": split.to_numpy(),
        }
    )
    return write_csv(table, path)


def read_splits(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("study_id", "split"):
        if column not in table.columns:
            raise ValueError(f"{path}: split table has no '{column}' column")
    bad = table[~table["split"].isin((*SPLIT_NAMES, EXCLUDED_SPLIT))]
    if len(bad):
        row = int(bad.index[0]) + 1
        raise ValueError(
            f"{path}: row {row}, column 'split': got {bad['split'].iloc[0]!r}; "
            f"expected one of {', '.join((*SPLIT_NAMES, EXCLUDED_SPLIT))}"
        )
    return table


def apply_splits(manifest: pd.DataFrame, splits: pd.DataFrame, source: str = "splits") -> pd.Series:
    """Look up each manifest study in a saved split table; every study must be there.

    The table may name studies in clear or by their pseudonyms (the default ``splits.csv``)."""
    lookup = dict(zip(splits["study_id"].astype(str), splits["split"], strict=True))
    for study in manifest["study_id"]:
        if study not in lookup:
            hashed = lookup.get(pseudonym(study, "study"))
            if hashed is not None:
                lookup[study] = hashed
    missing = [s for s in manifest["study_id"] if s not in lookup]
    if missing:
        raise ValueError(
            f"{source}: {len(missing)} manifest studies have no split "
            f"(first: {missing[:3]}); the split table belongs to another manifest"
        )
    result = pd.Series(
        [lookup[s] for s in manifest["study_id"]], index=manifest.index, name="split"
    )
    check_no_patient_leak(manifest["patient_id"], result)
    return result


# --------------------------------------------------------------------------- summary


def summarize(manifest: pd.DataFrame, split: pd.Series | None = None) -> pd.DataFrame:
    """Studies, patients, positives and prevalence per split (if given) and site."""
    table = manifest.assign(split=split.to_numpy() if split is not None else "all")
    groups = table.groupby(["split", "site"], sort=True)
    out = groups.agg(
        studies=("study_id", "size"),
        patients=("patient_id", "nunique"),
        positives=("label", lambda s: int(s.fillna(0).sum())),
    )
    out["prevalence"] = (out["positives"] / out["studies"]).round(3)
    return out.reset_index()


def format_summary(manifest: pd.DataFrame, split: pd.Series | None = None) -> str:
    table = summarize(manifest, split)
    lines = [
        f"{len(manifest)} studies of {manifest['patient_id'].nunique()} patients, "
        f"{int(manifest['label'].fillna(0).sum())} with osteoporosis "
        f"({manifest['label'].fillna(0).mean():.1%})",
        table.to_string(index=False),
    ]
    return "\n".join(lines)
