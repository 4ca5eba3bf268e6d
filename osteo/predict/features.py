"""The classifier's inputs for one radiograph, made exactly as the training pipeline made them.

Hip crops: ``osteo.data.hips`` centred between each hip's ROI boxes (from the mask when a box
is missing), at the image's spacing, else the mask's. Texture: the run's pyradiomics extractor
on the four ROIs at the image file's spacing (as the feature store did). Both, and the
clinical values, are standardised with the training split's statistics; a missing texture
value (a failed ROI) gets the training median, as in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from osteo.data.datamodules import Standardizer
from osteo.data.hips import extract_hip_crop, hip_crop_centre
from osteo.radiomics.roi import FEMUR_LABELS, SIDES, RoiResult

__all__ = ["InputError", "HipCrop", "hip_crops", "texture_features", "standardise"]


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
