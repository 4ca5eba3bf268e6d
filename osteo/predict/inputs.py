"""What to predict on: radiograph files, folders of them, or manifest CSVs, as study inputs.

A manifest for prediction needs only ``study_id`` and ``image_path``; every other column of
the training manifest is optional. Values that are given are validated exactly as for
training (``osteo.data.manifest.validate_manifest``), and every problem is reported at once.
Blank age, sex or weight cells are allowed: the value may come from the command line or the
DICOM header instead. Image files are not checked here: a missing or unreadable file fails its
own study, and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from osteo.data.io import DICOM_SUFFIXES, ITK_SUFFIXES, is_dicom_file
from osteo.data.manifest import (
    ManifestError,
    ManifestProblem,
    read_manifest_table,
    validate_manifest,
)

__all__ = ["StudyInput", "collect_inputs", "load_prediction_manifest", "is_manifest"]

# Placeholders for training-only columns, so the shared validator can check the rest.
_TRAINING_ONLY = {"study_date": "1900-01-01", "site": "unknown", "tscore": ""}
# Blank clinical cells are validated as these (valid) values, then put back as missing.
_CLINICAL_PLACEHOLDERS = {"age": "50", "sex": "F", "weight": "70"}


@dataclass(frozen=True)
class StudyInput:
    """One radiograph to predict on, with what the manifest says about it (if anything)."""

    study_id: str
    image_path: Path
    mask_path: Path | None = None
    clinical: dict[str, object] = field(default_factory=dict)  # age, sex, weight; None = blank
    origin: str = "file"  # "file" or "manifest"


def is_manifest(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def _full_suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _looks_like_radiograph(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    suffix = _full_suffix(path)
    return (
        suffix in DICOM_SUFFIXES or suffix in ITK_SUFFIXES or (not suffix and is_dicom_file(path))
    )


def _stem(path: Path) -> str:
    suffix = _full_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.name


def _files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and _looks_like_radiograph(p))


def load_prediction_manifest(path: str | Path) -> list[StudyInput]:
    """The studies of a manifest CSV; raises ``ManifestError`` listing every problem."""
    path = Path(path)
    # The training manifest's strict parser: duplicate headers, wrong field counts, size caps.
    table, read_problems = read_manifest_table(path)
    if read_problems:
        raise ManifestError(path, read_problems)
    missing = [c for c in ("study_id", "image_path") if c not in table.columns]
    if missing:
        raise ManifestError(
            path, [ManifestProblem(None, c, None, f"a column named '{c}'") for c in missing]
        )
    if table.empty:
        raise ManifestError(path, [ManifestProblem(None, None, None, "at least one data row")])

    check = table.copy()
    for column, placeholder in _TRAINING_ONLY.items():
        if column not in check.columns:
            check[column] = placeholder
    # Prediction does not group by patient; one id per row keeps the validator's
    # one-sex-per-patient check from tripping over the clinical placeholders below.
    check["patient_id"] = check["study_id"].where(check["study_id"].str.strip() != "", "row")
    blank: dict[str, pd.Series] = {}
    for column, placeholder in _CLINICAL_PLACEHOLDERS.items():
        if column not in check.columns:
            check[column] = ""
        blank[column] = check[column].str.strip() == ""
        check.loc[blank[column], column] = placeholder
    # Files to predict on are the user's own choice: paths anywhere are allowed here.
    rows, problems = validate_manifest(
        check,
        path.resolve().parent,
        require_label=False,
        check_files=False,
        allow_outside_paths=True,
    )
    if problems:
        problems.sort(key=lambda p: p.row or 0)
        raise ManifestError(path, problems)

    studies = []
    for i, row in enumerate(rows.to_dict("records")):
        clinical = {
            name: None if blank[name].iloc[i] or pd.isna(row[name]) else row[name]
            for name in _CLINICAL_PLACEHOLDERS
        }
        if clinical["age"] is not None:
            clinical["age"] = float(clinical["age"])
        if clinical["weight"] is not None:
            clinical["weight"] = float(clinical["weight"])
        studies.append(
            StudyInput(
                study_id=str(row["study_id"]),
                image_path=Path(row["image_path"]),
                mask_path=Path(row["mask_path"]) if row.get("mask_path") else None,
                clinical=clinical,
                origin="manifest",
            )
        )
    return studies


def collect_inputs(items: Iterable[str | Path]) -> list[StudyInput]:
    """Expand files, folders (searched recursively) and manifests into studies, in order.

    A path that does not exist stays a study of its own, so it is reported as a failed input
    rather than silently skipped. File studies are named by the file name without suffix, or
    by the path when two inputs share a name.
    """
    studies: list[StudyInput] = []
    files: list[tuple[Path, Path | None]] = []  # (file, the folder it was found in)
    for item in items:
        path = Path(item)
        if is_manifest(path):
            studies.extend(load_prediction_manifest(path))
        elif path.is_dir():
            files.extend((p, path) for p in _files_in(path))
        else:
            files.append((path, None))
    stems = [_stem(p) for p, _ in files]
    for (path, folder), stem in zip(files, stems, strict=True):
        if stems.count(stem) > 1:
            stem = f"{folder.name}/{path.relative_to(folder)}" if folder else str(path)
        studies.append(StudyInput(study_id=stem, image_path=path))
    return studies
