"""Prediction records as JSON lines or CSV, without identifiers unless asked for.

By default a study is named by ``hash_identifier(study_id)`` and no path, file name or study
id appears anywhere in a record, error messages included (they are redacted). With
``show_identifiers`` the record also carries ``study_id`` and ``image_path``.

A ``not_assessable`` record carries the gate's ``reasons`` and no ``probability``,
``threshold``, ``decision`` or ``tscore_pred`` at all (not even as null), so no reader can
take a number from it for a valid result.

Records are written as they come, so a batch killed halfway leaves every finished study in
the output.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO

from osteo.predict.predictor import StudyResult, public_id
from osteo.tables import neutralise_cell

__all__ = ["FORMATS", "result_record", "redact", "ResultWriter", "CSV_COLUMNS"]

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = (
    "study",
    "status",
    "probability",
    "threshold",
    "decision",
    "tscore_pred",
    "age",
    "sex",
    "weight",
    "right_neck",
    "right_cortex",
    "left_neck",
    "left_cortex",
    "gradcam_share_right",
    "gradcam_share_left",
    "top_features",
    "flags",
    "reasons",
    "overlay",
    "error",
    "seconds",
    "study_id",
    "image_path",
)


def redact(text: str, result: StudyResult) -> str:
    """``text`` without the study's paths, file names or id (longest first)."""
    study = result.study
    secrets = {str(study.image_path), study.image_path.name, _stem(study.image_path)}
    if study.mask_path is not None:
        secrets |= {str(study.mask_path), study.mask_path.name}
    secrets.add(study.study_id)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "<input>")
    return text


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def result_record(result: StudyResult, show_identifiers: bool = False) -> dict:
    """One JSON-able record per study (the JSON lines schema; see the README)."""
    record: dict = {"study": public_id(result.study, show_identifiers), "status": result.status}
    if show_identifiers:
        record["study_id"] = result.study.study_id
        record["image_path"] = str(result.study.image_path)
    if result.ok:
        record["probability"] = _round(result.probability)
        record["threshold"] = _round(result.threshold)
        record["decision"] = "osteoporosis" if result.positive else "no osteoporosis"
        if result.tscore is not None:
            record["tscore_pred"] = _round(result.tscore, 3)
        if result.clinical is not None:
            record["clinical"] = {
                "values": result.clinical.values,
                "sources": result.clinical.sources,
            }
        if result.rois is not None:
            record["rois"] = {
                side: {name: list(box) for name, box in hip.boxes.items()}
                for side, hip in result.rois.hips.items()
            }
        record["spacing_mm"] = list(result.spacing) if result.spacing else None
        record["image_size"] = list(result.image_size) if result.image_size else None
        if result.explanation:
            record["explanation"] = result.explanation
        if result.overlay is not None:
            record["overlay"] = str(result.overlay)
    elif not result.assessable:
        reasons = result.reasons
        record["reasons"] = reasons if show_identifiers else [redact(r, result) for r in reasons]
        record["spacing_mm"] = list(result.spacing) if result.spacing else None
        record["image_size"] = list(result.image_size) if result.image_size else None
        if result.overlay is not None:
            record["overlay"] = str(result.overlay)
    else:
        error = result.error or "unknown error"
        record["error"] = error if show_identifiers else redact(error, result)
    flags = result.flags if show_identifiers else [redact(f, result) for f in result.flags]
    record["quality"] = {"ok": result.ok and not flags, "flags": flags}
    record["seconds"] = round(result.seconds, 3)
    return record


def _csv_row(record: dict) -> dict:
    row = {k: record.get(k) for k in CSV_COLUMNS}
    clinical = (record.get("clinical") or {}).get("values") or {}
    row.update({k: clinical.get(k) for k in ("age", "sex", "weight")})
    for side, boxes in (record.get("rois") or {}).items():
        for name, box in boxes.items():
            row[f"{side}_{name}"] = " ".join(str(v) for v in box)
    explanation = record.get("explanation") or {}
    for side, share in (explanation.get("gradcam_share") or {}).items():
        row[f"gradcam_share_{side}"] = share
    row["top_features"] = "; ".join(
        f"{f['name']}={f['contribution']:+.4f}" for f in explanation.get("top_features", [])
    )
    row["flags"] = "; ".join(record["quality"]["flags"])
    row["reasons"] = "; ".join(record.get("reasons", []))
    return row


class ResultWriter:
    """Append records to a JSON lines or CSV file (or stdout), one per study, as they come."""

    def __init__(self, path: Path | None, fmt: str, show_identifiers: bool = False) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        self.fmt = fmt
        self.show_identifiers = show_identifiers
        self.path = path
        self._fh: IO[str] = (
            open(path, "w", encoding="utf-8", newline="") if path is not None else sys.stdout
        )
        self._csv = None
        if fmt == "csv":
            columns = CSV_COLUMNS if show_identifiers else CSV_COLUMNS[:-2]
            self._csv = csv.DictWriter(self._fh, fieldnames=columns, extrasaction="ignore")
            self._csv.writeheader()

    def write(self, result: StudyResult) -> dict:
        record = result_record(result, self.show_identifiers)
        if self._csv is not None:
            # Formula-leading text (an id, an error message) is neutralised as in osteo.tables.
            self._csv.writerow({k: neutralise_cell(v) for k, v in _csv_row(record).items()})
        else:
            self._fh.write(json.dumps(record, default=str) + "\n")
        self._fh.flush()
        return record

    def close(self) -> None:
        if self._fh is not sys.stdout:
            self._fh.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
