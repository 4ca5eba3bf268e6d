"""Hip crops for the Siamese CNN: one square per hip, the left mirrored to look like the right.

A crop is centred between the neck box and the medial-cortex box of its hip (so it holds the
head, neck, trochanters and proximal shaft), spans ``crop_mm`` whatever the pixel spacing, and
is resampled to ``size`` pixels (``crop_mm / size`` mm each: the config's ``train.crop_mm`` and
``train.crop_spacing_mm``, see ``osteo.config.crop_geometry``), smoothed first when that
is coarser than the radiograph so fine noise does not alias into the crop. Intensities are
standardised within the crop: radiographs have no absolute grey scale, so only the contrast
inside the hip carries information.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

__all__ = ["CROP_ALGORITHM_VERSION", "hip_crop_centre", "extract_hip_crop", "extract_hip_pair"]

Box = tuple[int, int, int, int]

# Part of the training tensor cache key: bump it when the crops a study gives change.
CROP_ALGORITHM_VERSION = 2
_TRUNCATE = 4.0  # gaussian_filter's kernel radius in sigmas (scipy's default)


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


def _antialias_sigma(step: float) -> float:
    """Gaussian sigma (source pixels) before sampling every ``step`` pixels: scikit-image's
    rule for ``rescale(anti_aliasing=True)``, max(0, (step - 1) / 2); none when upsampling.

    At 0.15 mm -> 1.15 mm (step 7.7, sigma 3.3 px) it keeps ~40% of the contrast at the
    crop's Nyquist frequency (Gaussian MTF exp(-2 pi^2 sigma^2 f^2)): a compromise between
    aliasing and blur, about the same for any large step (sigma grows with it).
    A stricter low-pass would change every crop; the crop-spacing study is where to choose.
    """
    return max(0.0, (step - 1.0) / 2.0)


def _window(coords: np.ndarray, length: int, pad: int) -> tuple[int, int]:
    """The [start, stop) source range that sampling ``coords`` (clamped to the image, as
    ``mode="nearest"`` does) needs, plus ``pad`` pixels each side for the smoothing kernel."""
    lo = int(np.clip(np.floor(coords.min()), 0, length - 1))
    hi = int(np.clip(np.ceil(coords.max()), 0, length - 1))
    return max(lo - pad, 0), min(hi + pad + 1, length)


def extract_hip_crop(
    pixels: np.ndarray,
    spacing: tuple[float, float],
    centre: tuple[float, float],
    crop_mm: float,
    size: int,
    mirror: bool,
) -> np.ndarray:
    """A ``size`` x ``size`` float32 crop, standardised within the crop.

    Only a window around the crop is smoothed (the kernel's reach plus the bilinear
    neighbour): on a 10 MP radiograph at 0.15 mm a 110 mm crop needs ~0.6 MP, and the result
    equals smoothing the whole image (``gaussian_filter`` truncates its kernel at 4 sigma;
    the window reaches further and, at the image's own edges, reflects as the whole image
    would).
    """
    step_r = crop_mm / size / spacing[0]  # source pixels per output pixel
    step_c = crop_mm / size / spacing[1]
    offsets = np.arange(size) - (size - 1) / 2.0
    rows = centre[0] + offsets * step_r
    cols = centre[1] + offsets * step_c
    if mirror:
        cols = cols[::-1]
    # Smooth before downsampling so fine noise does not alias into texture.
    sigma = (_antialias_sigma(step_r), _antialias_sigma(step_c))
    smooth = max(sigma) > 0.3
    pads = [int(_TRUNCATE * s + 0.5) + 2 if smooth else 2 for s in sigma]
    r0, r1 = _window(rows, pixels.shape[0], pads[0])
    c0, c1 = _window(cols, pixels.shape[1], pads[1])
    window = np.asarray(pixels[r0:r1, c0:c1], dtype=np.float32)
    if smooth:
        window = ndimage.gaussian_filter(window, sigma, truncate=_TRUNCATE)
    grid_r, grid_c = np.meshgrid(rows - r0, cols - c0, indexing="ij")
    crop = ndimage.map_coordinates(window, [grid_r, grid_c], order=1, mode="nearest")
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
