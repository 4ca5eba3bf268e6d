"""A study -> the classifier's inputs: the one builder training and prediction share.

The training tensor cache (``osteo.classification.stage.build_split_tensors``) and
``osteo.predict`` both call these functions, so a prediction is made on inputs built exactly
as the model's training inputs were (``tests/test_inputs.py`` checks it bit for bit):

- hip crops: ``osteo.classification.hips`` centred between each hip's ROI boxes (from the
  mask when a box is missing), at the image's spacing, else the mask's; stored as float16
  (``CROP_DTYPE``), the precision the model was trained on;
- clinical: ``[age, sex_male, weight]`` (``CLINICAL_NAMES``), NaN where missing;
- texture: the run's pyradiomics extractor on the four ROIs at the image file's spacing (as
  the feature store does);
- clinical and texture standardised with the training split's ``Standardizer`` (saved once
  in the run folder's ``scalers.json``); a missing value takes the training median first.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from osteo.classification.hips import extract_hip_crop, hip_crop_centre
from osteo.roi.geometry import FEMUR_LABELS, SIDES, RoiResult

__all__ = [
    "CLINICAL_NAMES",
    "CROP_DTYPE",
    "Standardizer",
    "InputError",
    "HipCrop",
    "clinical_vector",
    "hip_crops",
    "crop_tensor",
    "texture_features",
    "standardise",
]

# Hip crops are stored (and so trained on) in half precision: the split tensor files stay
# small. Prediction rounds its crops the same way so the model sees what it was trained on.
CROP_DTYPE = torch.float16

CLINICAL_NAMES = ("age", "sex_male", "weight")
_SEX_CODES = {"M": 1.0, "F": 0.0}


class Standardizer:
    """Per-feature mean, std and median fitted on the training split only, saved with the model.

    The median fills missing values (when the policy allows it) before standardising.
    """

    def __init__(self, mean, std, medians, names: Sequence[str]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.medians = np.asarray(medians, dtype=np.float32)
        self.names = list(names)

    @classmethod
    def fit(cls, values: np.ndarray, names: Sequence[str]) -> Standardizer:
        values = np.where(np.isfinite(values), values, np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are handled below
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0)
            medians = np.nanmedian(values, axis=0)
        # A constant feature (std 0) carries nothing; dividing by 1 keeps it finite.
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        medians = np.where(np.isfinite(medians), medians, 0.0)
        return cls(mean, std, medians, names)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def state_dict(self) -> dict:
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "medians": self.medians.tolist(),
            "names": self.names,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> Standardizer:
        return cls(state["mean"], state["std"], state["medians"], state["names"])


def _number(value) -> float:
    """A clinical number, NaN when missing (None from prediction, NaN from a manifest row)."""
    return np.nan if value is None or pd.isna(value) else float(value)


def clinical_vector(age, sex, weight) -> np.ndarray:
    """``[age, sex_male, weight]`` in ``CLINICAL_NAMES`` order, float32, NaN where missing."""
    return np.array(
        [_number(age), _SEX_CODES.get(sex, np.nan) if sex is not None else np.nan, _number(weight)],
        dtype=np.float32,
    )


class InputError(ValueError):
    """The model's inputs cannot be made for this study; the message says why."""


@dataclass
class HipCrop:
    """One hip as the CNN sees it, and where it lies in the radiograph."""

    pixels: np.ndarray  # (size, size) float32, standardised; the left hip mirrored
    centre: tuple[float, float]  # (row, col) in the radiograph
    step: tuple[float, float]  # radiograph pixels per crop pixel (row, col)
    mirrored: bool

    def extent(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) in radiograph pixels, for ``imshow(extent=...)``."""
        half_r = self.pixels.shape[0] / 2 * self.step[0]
        half_c = self.pixels.shape[1] / 2 * self.step[1]
        r, c = self.centre
        return (c - half_c, c + half_c, r + half_r, r - half_r)


def hip_crops(
    pixels: np.ndarray,
    spacing: tuple[float, float],
    label_map: np.ndarray,
    rois: RoiResult | None,
    crop_mm: float,
    size: int,
) -> dict[str, HipCrop]:
    """Both hips' crops; raises ``InputError`` when a femur is missing from the mask."""
    crops = {}
    for side in SIDES:
        boxes = rois.hips[side].boxes if rois is not None else {}
        centre = hip_crop_centre(boxes, label_map, FEMUR_LABELS[side])
        if centre is None:
            raise InputError(f"no {side} femur in the mask to centre the hip crop on")
        mirrored = side == "left"
        crop = extract_hip_crop(pixels, spacing, centre, crop_mm, size, mirror=mirrored)
        step = (crop_mm / size / spacing[0], crop_mm / size / spacing[1])
        crops[side] = HipCrop(crop, (float(centre[0]), float(centre[1])), step, mirrored)
    return crops


def crop_tensor(crop: np.ndarray) -> torch.Tensor:
    """A crop as the model's input: rounded to ``CROP_DTYPE`` (as stored) and back to float32."""
    return torch.from_numpy(crop).to(CROP_DTYPE).float()


def texture_features(
    extractor, pixels: np.ndarray, rois: RoiResult, spacing: tuple[float, float] | None
) -> tuple[np.ndarray, dict[str, str]]:
    """Radiomics of the four ROIs (NaN where one failed) and the failures' reasons."""
    return extractor.extract_study_with_failures(pixels, rois.boxes(), spacing)


def standardise(scaler: Standardizer, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Training-split standardisation; missing values take the training median first.

    Returns the standardised vector and the names of the imputed features.
    """
    values = np.asarray(values, dtype=np.float32)
    missing = ~np.isfinite(values)
    filled = np.where(missing, scaler.medians, values)
    return scaler(filled), [scaler.names[i] for i in np.flatnonzero(missing)]
