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

__all__ = ["FACTOR", "coarse_shape", "downsample", "smooth_large", "upsample"]

FACTOR = 4


def coarse_shape(shape: tuple[int, int]) -> tuple[int, int]:
    return -(-shape[0] // FACTOR), -(-shape[1] // FACTOR)


@lru_cache(maxsize=16)
def _interpolation(fine: int, coarse: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each fine index: the coarse neighbours below/above and the weight of the upper."""
    position = np.clip((np.arange(fine) - (FACTOR - 1) / 2.0) / FACTOR, 0.0, coarse - 1.0)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, coarse - 1)
    return lower, upper, (position - lower).astype(np.float32)


def downsample(image: np.ndarray) -> np.ndarray:
    """Block means (edge-padded to a multiple of FACTOR)."""
    rows, cols = image.shape
    padded = np.pad(image, ((0, (-rows) % FACTOR), (0, (-cols) % FACTOR)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // FACTOR, FACTOR, padded.shape[1] // FACTOR, FACTOR)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def upsample(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Separable linear interpolation back to ``shape`` (edges held constant)."""
    coarse = coarse.astype(np.float32, copy=False)
    lo, hi, w = _interpolation(shape[0], coarse.shape[0])
    rows = coarse[lo] * (1.0 - w)[:, None] + coarse[hi] * w[:, None]
    lo, hi, w = _interpolation(shape[1], coarse.shape[1])
    return rows[:, lo] * (1.0 - w) + rows[:, hi] * w


def smooth_large(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A wide Gaussian blur (sigma >> FACTOR pixels), computed on the coarse grid."""
    coarse = ndimage.gaussian_filter(downsample(image), sigma_px / FACTOR, mode="nearest")
    return upsample(coarse, image.shape)
