"""Projected trabecular texture: band-limited fractal noise, optionally streaked along a flow.

At radiograph resolution (~1 mm pixels) single trabeculae (0.1-0.3 mm) are not resolved; what
shows is their projection summed through the bone: a random texture with a power-law (fractal)
spectrum, anisotropic where the trabeculae of a group are aligned (Pothuaud et al., JBMR 2000;
Benhamou et al., JBMR 2001). The spectrum is ``f^-(H+1)`` in amplitude (a fractional Brownian
surface with Hurst exponent H), cut off above 1/spacing and below the bone scale.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["FlowTexture", "fractal_noise", "sample_periodic"]


def fractal_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    step_mm: float,
    hurst: float,
    cutoff_mm: float,
    elongation: float = 1.0,
    largest_mm: float = 25.0,
) -> np.ndarray:
    """Periodic noise with unit expected variance on a grid of ``step_mm`` spacing.

    Axis 0 is the streak direction: structures are ``elongation`` times longer along it.
    ``cutoff_mm`` is the finest wavelength kept (the projected trabecular spacing);
    ``largest_mm`` the coarsest (beyond it the bone outline, not texture, takes over).
    """
    white = rng.standard_normal(shape).astype(np.float32)
    spectrum = np.fft.rfft2(white)
    fu = np.fft.fftfreq(shape[0], d=step_mm)[:, None]
    fv = np.fft.rfftfreq(shape[1], d=step_mm)[None, :]
    f = np.sqrt(np.square(fu * elongation) + np.square(fv)) + 1e-6
    amplitude = (
        np.power(f, -(hurst + 1.0))
        * (1.0 - np.exp(-np.square(f * largest_mm)))
        * np.exp(-np.square(f * cutoff_mm))
    )
    # Parseval: the output variance is the mean squared amplitude over the full plane.
    weights = np.full(amplitude.shape, 2.0)
    weights[:, 0] = 1.0
    if shape[1] % 2 == 0:
        weights[:, -1] = 1.0
    rms = np.sqrt(np.sum(weights * np.square(amplitude)) / (shape[0] * shape[1]))
    field = np.fft.irfft2(spectrum * amplitude, s=shape) / rms
    return field.astype(np.float32)


def sample_periodic(field: np.ndarray, u_mm: np.ndarray, v_mm: np.ndarray, step_mm: float):
    """Bilinear look-up of a periodic field at (u, v) in mm (any range: it wraps)."""
    coords = np.stack([u_mm / step_mm, v_mm / step_mm])
    return ndimage.map_coordinates(field, coords, order=1, mode="grid-wrap").astype(np.float32)


class FlowTexture:
    """One trabecular group's texture: fractal noise streaked along the group's streamlines.

    The caller supplies, per pixel, the coordinate along the streamlines (u) and across them
    (v), both in mm; the texture is generated once per group on a periodic grid.
    """

    GRID = (192, 128)
    STEP_MM = 0.6
    # Beyond ~8 mm the groups' layout (weights), not the texture, sets the density; keeping
    # the texture band 8 mm .. spacing makes it visible inside a 10-15 mm neck ROI.
    LARGEST_MM = 8.0

    def __init__(self, rng, hurst: float, spacing_mm: float, elongation: float):
        self.field = fractal_noise(
            rng,
            self.GRID,
            self.STEP_MM,
            hurst,
            cutoff_mm=spacing_mm / 3.0,
            elongation=elongation,
            largest_mm=self.LARGEST_MM,
        )

    def __call__(self, u_mm: np.ndarray, v_mm: np.ndarray) -> np.ndarray:
        return sample_periodic(self.field, u_mm, v_mm, self.STEP_MM)
