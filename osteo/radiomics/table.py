"""Radiomics features of many studies as one tensor, and the per-split file the DataModule loads.

File format (``torch.save``; plain tensors, lists and dicts, so ``torch.load(path,
weights_only=True)`` reads it)::

    {
        "format": "osteo.radiomics.table/1",
        "study_id": [str, ...],                     # N
        "features": FloatTensor[N, F],              # F = 660 by default; NaN where a ROI failed
        "feature_names": [str, ...],                # F, e.g. "right.neck.original_glcm_Id"
        "failures": [{"study_id", "roi", "reason"}, ...],
    }
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from osteo.files import atomic_path

__all__ = [
    "TABLE_FORMAT",
    "RoiFailure",
    "FeatureTable",
    "save_feature_table",
    "load_feature_table",
    "save_split_tables",
]

TABLE_FORMAT = "osteo.radiomics.table/1"


@dataclass(frozen=True)
class RoiFailure:
    """A ROI (``right.neck``...), or the whole study (``image``/``study``), without features."""

    study_id: str
    roi: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"study_id": self.study_id, "roi": self.roi, "reason": self.reason}


@dataclass
class FeatureTable:
    study_ids: list[str]
    features: torch.Tensor  # float32 [N, F]; NaN where a ROI (or the study) failed
    feature_names: list[str]
    failures: list[RoiFailure] = field(default_factory=list)

    def __post_init__(self) -> None:
        n, f = len(self.study_ids), len(self.feature_names)
        if tuple(self.features.shape) != (n, f):
            raise ValueError(f"features have shape {tuple(self.features.shape)}, expected {(n, f)}")
        if self.features.dtype != torch.float32:
            raise ValueError(f"features must be float32, got {self.features.dtype}")
        if len(set(self.study_ids)) != n:
            raise ValueError("study ids must be unique")

    def __len__(self) -> int:
        return len(self.study_ids)

    def select(self, study_ids: Iterable[str]) -> FeatureTable:
        """The rows of ``study_ids``, in that order; unknown ids raise ``KeyError``."""
        wanted = list(study_ids)
        row_of = {study_id: row for row, study_id in enumerate(self.study_ids)}
        unknown = [s for s in wanted if s not in row_of]
        if unknown:
            raise KeyError(f"{len(unknown)} study ids not in the table, e.g. {unknown[:5]}")
        rows = torch.tensor([row_of[s] for s in wanted], dtype=torch.long)
        kept = set(wanted)
        return FeatureTable(
            study_ids=wanted,
            features=self.features.index_select(0, rows),
            feature_names=list(self.feature_names),
            failures=[f for f in self.failures if f.study_id in kept],
        )


def save_feature_table(table: FeatureTable, path: str | Path) -> Path:
    """Write ``table`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": TABLE_FORMAT,
        "study_id": list(table.study_ids),
        "features": table.features.contiguous(),
        "feature_names": list(table.feature_names),
        "failures": [f.as_dict() for f in table.failures],
    }
    with atomic_path(path, suffix=".pt") as temporary:
        torch.save(payload, temporary)
    return path


def load_feature_table(path: str | Path) -> FeatureTable:
    payload = torch.load(Path(path), weights_only=True)
    if payload.get("format") != TABLE_FORMAT:
        raise ValueError(f"{path}: not an osteo radiomics table (format {payload.get('format')!r})")
    return FeatureTable(
        study_ids=list(payload["study_id"]),
        features=payload["features"],
        feature_names=list(payload["feature_names"]),
        failures=[RoiFailure(**f) for f in payload["failures"]],
    )


def save_split_tables(
    table: FeatureTable, split_of: Mapping[str, str], folder: str | Path
) -> dict[str, Path]:
    """One ``<folder>/<split>.pt`` per split; ``split_of`` maps study id to split name.

    Every study of ``table`` must have a split, so that no study is dropped silently.
    """
    missing = [s for s in table.study_ids if s not in split_of]
    if missing:
        raise KeyError(f"{len(missing)} studies have no split, e.g. {missing[:5]}")
    by_split: dict[str, list[str]] = {}
    for study_id in table.study_ids:
        by_split.setdefault(split_of[study_id], []).append(study_id)
    return {
        split: save_feature_table(table.select(ids), Path(folder) / f"{split}.pt")
        for split, ids in by_split.items()
    }
