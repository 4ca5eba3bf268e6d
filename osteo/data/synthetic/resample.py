"""Coarse <-> fine grids for everything smooth (soft tissue, scatter, console low-pass).

Smooth quantities are computed on a grid ``FACTOR`` times coarser and brought back by
separable linear interpolation (two gathers), several times faster than ``scipy.ndimage.zoom``
at these sizes. Coarse sample k sits at the centre of fine
pixels FACTOR*k .. FACTOR*k + FACTOR - 1.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

__all__ = ["FACTOR", "coarse_shape", "downsample", "smooth", "smooth_large", "upsample"]

FACTOR = 4


def coarse_shape(shape: tuple[int, int]) -> tuple[int, int]:
    return -(-shape[0] // FACTOR), -(-shape[1] // FACTOR)


@lru_cache(maxsize=32)
def _interpolation(
    fine: int, coarse: int, factor: int = FACTOR
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each fine index: the coarse neighbours below/above and the weight of the upper."""
    position = np.clip((np.arange(fine) - (factor - 1) / 2.0) / factor, 0.0, coarse - 1.0)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, coarse - 1)
    return lower, upper, (position - lower).astype(np.float32)


def downsample(image: np.ndarray, factor: int = FACTOR) -> np.ndarray:
    """Block means (edge-padded to a multiple of ``factor``)."""
    rows, cols = image.shape
    padded = np.pad(image, ((0, (-rows) % factor), (0, (-cols) % factor)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def upsample(coarse: np.ndarray, shape: tuple[int, int], factor: int = FACTOR) -> np.ndarray:
    """Separable linear interpolation back to ``shape`` (edges held constant)."""
    coarse = coarse.astype(np.float32, copy=False)
    # Columns first, on the few coarse rows; then whole-row gathers (contiguous copies).
    lo, hi, w = _interpolation(shape[1], coarse.shape[1], factor)
    cols = coarse[:, lo] * (1.0 - w) + coarse[:, hi] * w
    lo, hi, w = _interpolation(shape[0], coarse.shape[0], factor)
    out = cols[lo]
    out *= (1.0 - w)[:, None]
    upper = cols[hi]
    upper *= w[:, None]
    out += upper
    return out


def smooth(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A Gaussian blur of any width; wide ones (fine pixels) run on a block-mean grid.

    The block mean and the linear interpolation back blur by about half a block (sigma), which
    is taken off the coarse Gaussian, so the result matches a direct Gaussian to ~1%.
    """
    factor = int(sigma_px // 4.0)
    if factor < 2:
        return ndimage.gaussian_filter(image, sigma_px, mode="nearest")
    coarse_sigma = np.sqrt(max(sigma_px**2 - (0.5 * factor) ** 2, 0.0)) / factor
    coarse = ndimage.gaussian_filter(downsample(image, factor), coarse_sigma, mode="nearest")
    return upsample(coarse, image.shape, factor)


def smooth_large(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A wide Gaussian blur (sigma >> 1 pixel): :func:`smooth` on its block-mean grid."""
    return smooth(image, sigma_px)
