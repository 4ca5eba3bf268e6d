"""Hip crops for the Siamese CNN: one square per hip, the left mirrored to look like the right.

A crop is centred between the neck box and the medial-cortex box of its hip (so it holds the
head, neck, trochanters and proximal shaft), spans ``crop_mm`` whatever the pixel spacing, and
is resampled to ``size`` pixels. Intensities are standardised within the crop: radiographs
have no absolute grey scale, so only the contrast inside the hip carries information.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

__all__ = ["hip_crop_centre", "extract_hip_crop", "extract_hip_pair"]

Box = tuple[int, int, int, int]


def hip_crop_centre(boxes: Mapping[str, Box], label_map: np.ndarray | None, label: int):
    """The crop centre of one hip (row, col), from its boxes, else from its mask."""
    if "neck" in boxes and "cortex" in boxes:
        (a0, b0, a1, b1), (c0, d0, c1, d1) = boxes["neck"], boxes["cortex"]
        return ((a0 + a1 + c0 + c1) / 4.0, (b0 + b1 + d0 + d1) / 4.0)
    if label_map is not None and (label_map == label).any():
        rows, cols = np.nonzero(label_map == label)
        top = rows.min()
        upper = rows < top + 0.45 * (rows.max() - top + 1)  # proximal femur only
        return (float(rows[upper].mean()), float(cols[upper].mean()))
    return None


def extract_hip_crop(
    pixels: np.ndarray,
    spacing: tuple[float, float],
    centre: tuple[float, float],
    crop_mm: float,
    size: int,
    mirror: bool,
) -> np.ndarray:
    """A ``size`` x ``size`` float32 crop, standardised within the crop."""
    step_r = crop_mm / size / spacing[0]  # source pixels per output pixel
    step_c = crop_mm / size / spacing[1]
    offsets = np.arange(size) - (size - 1) / 2.0
    rows = centre[0] + offsets * step_r
    cols = centre[1] + offsets * step_c
    if mirror:
        cols = cols[::-1]
    grid_r, grid_c = np.meshgrid(rows, cols, indexing="ij")
    # Smooth before downsampling so fine noise does not alias into texture.
    sigma = (max(0.0, (step_r - 1) / 2), max(0.0, (step_c - 1) / 2))
    source = ndimage.gaussian_filter(pixels, sigma) if max(sigma) > 0.3 else pixels
    crop = ndimage.map_coordinates(source, [grid_r, grid_c], order=1, mode="nearest")
    lo, hi = np.percentile(crop, [1, 99])
    crop = np.clip(crop, lo, hi)
    std = float(crop.std())
    crop = (crop - crop.mean()) / (std if std > 1e-6 else 1.0)
    return crop.astype(np.float32)


def extract_hip_pair(
    pixels: np.ndarray,
    spacing: tuple[float, float],
    centres: Mapping[str, tuple[float, float]],
    crop_mm: float,
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(right, left): the patient's right hip as seen, the left mirrored."""
    right = extract_hip_crop(pixels, spacing, centres["right"], crop_mm, size, mirror=False)
    left = extract_hip_crop(pixels, spacing, centres["left"], crop_mm, size, mirror=True)
    return right, left
