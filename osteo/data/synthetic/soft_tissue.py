"""Soft tissue and bowel gas, as chords in mm of water-equivalent tissue.

The trunk is an elliptical-ish cross-section whose AP depth and width grow with weight; below
the pubis it divides into the two thighs. Fat and muscle planes show as gentle low-frequency
variation. Gas in the rectum and sigmoid appears as dark rounded pockets over the sacrum and
the iliac wings, a common and bone-independent nuisance on pelvic radiographs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .anatomy import PixelFrame
from .primitives import ellipsoid, smoothstep
from .resample import FACTOR, upsample
from .texture import fractal_noise, sample_periodic

__all__ = ["render_gas", "render_soft_tissue"]


def render_soft_tissue(frame: PixelFrame, study: Mapping, rng: np.random.Generator) -> np.ndarray:
    """Soft-tissue chords on the full grid (computed coarse: nothing here is sharp)."""
    coarse = frame.coarse(FACTOR)
    x, y = coarse.patient_grid(*coarse.full())
    depth = float(study["soft_tissue_mm"])
    half_width = float(study["body_half_width_mm"])
    # A super-ellipse: pelvis cross-sections are flatter than an ellipse.
    ratio = np.minimum(np.abs(x) / half_width, 1.0)
    trunk = depth * np.power(1.0 - np.power(ratio, 2.5), 1.0 / 2.5)
    # The thighs: cylinders around each femur that taper below the buttocks; they meet at
    # the midline (perineum), leaving a darker cleft only at the bottom of the film.
    thigh_r = (0.47 * half_width + 0.08 * depth) * (1.0 - 0.05 * smoothstep(y, 60.0, 220.0))
    centre_x = 0.42 * half_width
    thighs = np.zeros_like(x)
    for sign in (-1.0, 1.0):
        dx = np.minimum(np.abs(x - np.float32(sign * centre_x)) / thigh_r, 1.0)
        thighs = np.maximum(thighs, 2.0 * thigh_r * np.sqrt(1.0 - dx * dx))
    thighs = np.minimum(thighs, 0.95 * depth)
    split = smoothstep(y, 50.0, 150.0)
    tissue = (1.0 - split) * trunk + split * np.minimum(thighs, trunk + 1.0)
    # On a fixed 4 mm grid (periodic over 512 mm), so every pixel spacing sees the same planes.
    planes = fractal_noise(rng, (128, 128), 4.0, hurst=0.7, cutoff_mm=6.0, largest_mm=120.0)
    planes = sample_periodic(planes, x, y, 4.0)
    return upsample(tissue * (1.0 + 0.012 * planes), frame.shape)


def render_gas(frame: PixelFrame, study: Mapping, rng: np.random.Generator) -> np.ndarray:
    """Negative chords (mm of tissue displaced by gas)."""
    gas = np.zeros(frame.shape, dtype=np.float32)
    for _ in range(int(study["bowel_gas"])):
        center = np.array([rng.uniform(-85.0, 85.0), rng.uniform(-140.0, -15.0)])
        a, b = rng.uniform(6.0, 20.0), rng.uniform(5.0, 15.0)
        depth = rng.uniform(6.0, 22.0)
        corners = np.array([center + [dx, dy] for dx in (-a, a) for dy in (-b, b)])
        box = frame.box(corners, margin_mm=2.0)
        if box is None:
            continue
        x, y = frame.patient_grid(*box)
        gas[box] -= ellipsoid(x - np.float32(center[0]), y - np.float32(center[1]), a, b, depth)
    return gas
