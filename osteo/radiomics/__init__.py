"""Radiomics texture features of the hip ROIs: extraction, a feature store, feature tables.

Names are imported lazily, so ``import osteo.radiomics`` stays cheap and worker processes that
only extract never import torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

_EXPORTS = {
    "extractor": (
        "ROIS",
        "ROI_SLOTS",
        "SIDES",
        "RadiomicsExtractor",
        "RoiExtractionError",
        "slot_name",
    ),
    "store": ("FeatureStore", "StoreEntry", "StudyItem", "read_pixels"),
    "parallel": ("ExtractionResult", "MissingEntriesError", "extract_many", "load_many"),
    "table": (
        "FeatureTable",
        "RoiFailure",
        "load_feature_table",
        "save_feature_table",
        "save_split_tables",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)

# The default parameter file, in the repository's configs/ (not part of the installed package).
DEFAULT_PARAMS_PATH = Path(__file__).resolve().parents[2] / "configs" / "radiomics" / "default.yaml"


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
