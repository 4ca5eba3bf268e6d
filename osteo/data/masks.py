"""Femur label maps: the one reader every stage and ``osteo.predict`` use, and their checks.

The mask contract (docs/architecture.md): a 2D label map the size of the radiograph, 0
background, 1 the patient's right femur, 2 the patient's left femur (``osteo.constants``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from osteo.constants import FEMUR_LABELS

__all__ = ["MaskFormatError", "read_label_map", "missing_femurs"]


class MaskFormatError(ValueError):
    """A mask file that is not a 0/1/2 label map. The message names no path: prediction
    outputs carry it, and a path can name a patient; callers that may show paths add it."""


def read_label_map(path: str | Path) -> tuple[np.ndarray, tuple[float, float]]:
    """The label map (uint8) and its (row, column) spacing in mm, as stored with the mask.

    Raises ``MaskFormatError`` for a map that is not 2D or holds values other than 0, 1, 2.
    """
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array = array[0] if array.ndim == 3 and array.shape[0] == 1 else array
    if array.ndim != 2:
        raise MaskFormatError(f"the mask is not a 2D label map (shape {array.shape})")
    # min/max first: one pass over the pixels; the sorted label list only for the message.
    fractional = array.dtype.kind == "f" and not np.array_equal(array, np.round(array))
    if array.size and (array.min() < 0 or array.max() > 2 or fractional):
        labels = sorted(np.unique(array).tolist())
        raise MaskFormatError(f"the mask has labels {labels}; expected only 0, 1 and 2")
    sx, sy = image.GetSpacing()[:2]
    return array.astype(np.uint8), (float(sy), float(sx))


def missing_femurs(label_map: np.ndarray) -> list[str]:
    """Quality flags of a label map: each femur that is not in it ("right femur not found")."""
    return [
        f"{side} femur not found" for side, label in FEMUR_LABELS if not (label_map == label).any()
    ]
