"""Soft tissue and bowel gas, as chords in mm of water-equivalent tissue.

The trunk is an elliptical-ish cross-section whose AP depth and width grow with weight; below
the pubis it divides into the two thighs, whose medial outlines part below the perineum (a
gap that narrows as the thighs get heavier). A subcutaneous fat layer, thicker in heavier
patients, wraps a muscle compartment: fat attenuates less than muscle, so the compartment's
border shows as a faint contour inside each skin line. The buttocks end in the gluteal folds,
curved soft-tissue edges across the proximal thighs. Remaining fat and muscle planes show as
gentle low-frequency variation. Gas in the rectum and sigmoid appears as dark rounded pockets
over the sacrum and the iliac wings, a common and bone-independent nuisance on pelvic
radiographs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .anatomy import PixelFrame
from .clutter import clutter_rng
from .primitives import ellipsoid, smoothstep
from .resample import FACTOR, upsample
from .texture import fractal_noise, sample_periodic

__all__ = ["render_gas", "render_soft_tissue"]


# Attenuation relative to water at ~60 keV (NIST XCOM/ICRU 44 densities): adipose tissue
# 0.95 g/cm^3 -> ~0.89, skeletal muscle 1.05 g/cm^3 -> ~1.04.
FAT_DEFICIT = 0.11
MUSCLE_EXCESS = 0.04


def render_soft_tissue(frame: PixelFrame, study: Mapping, rng: np.random.Generator) -> np.ndarray:
    """Soft-tissue chords (mm of water equivalent) on the full grid, computed coarse: the
    sharpest features here (skin lines, folds) are several mm wide."""
    coarse = frame.coarse(FACTOR)
    x, y = coarse.patient_grid(*coarse.full())
    depth = float(study["soft_tissue_mm"])
    half_width = float(study["body_half_width_mm"])
    tissue = _body(x, y, depth, half_width)
    tissue = _contours(x, y, tissue, depth, half_width, clutter_rng(study, "soft_tissue"))
    # On a fixed 4 mm grid (periodic over 512 mm), so every pixel spacing sees the same planes.
    planes = fractal_noise(rng, (128, 128), 4.0, hurst=0.7, cutoff_mm=6.0, largest_mm=120.0)
    planes = sample_periodic(planes, x, y, 4.0)
    return upsample(tissue * (1.0 + 0.012 * planes), frame.shape)


def _contours(x, y, tissue, depth, half_width, rng: np.random.Generator) -> np.ndarray:
    """Fat/muscle borders, gluteal folds and the perineal gap, drawn per study from ``rng``
    and the body habitus (every draw is made, whatever the frame, so every spacing agrees)."""
    # Subcutaneous fat: ~10 mm in a thin patient, several cm in an obese one.
    fat = float(np.clip(10.0 + 0.3 * (depth - 160.0), 6.0, 55.0)) * rng.uniform(0.8, 1.2)
    muscle = np.minimum(_body(x, y, max(depth - 2.0 * fat, 40.0), half_width - fat), tissue)
    out = tissue - FAT_DEFICIT * (tissue - muscle) + MUSCLE_EXCESS * muscle

    # Gluteal folds: the buttocks' lower borders, convex downwards, 100-150 mm below the
    # head centres (around the lesser trochanters and ischial tuberosities).
    for sign in (-1.0, 1.0):
        lowest = rng.uniform(100.0, 150.0)
        ay = rng.uniform(70.0, 100.0)
        ax = rng.uniform(0.45, 0.6) * half_width
        cx = sign * rng.uniform(0.35, 0.5) * half_width
        bulk = rng.uniform(0.06, 0.11) * depth
        u = (x - np.float32(cx)) / np.float32(ax)
        v = (y - np.float32(lowest - ay)) / np.float32(ay)
        rho2 = np.square(u) + np.square(np.maximum(v, 0.0))
        upper = 1.0 - smoothstep(-v, 0.5, 1.0)  # fades out upwards, into the trunk
        out = out + bulk * np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0)) * upper * (out > 1.0)

    # Perineal gap: below the perineum the medial thigh outlines part; heavier thighs touch.
    perineum = rng.uniform(75.0, 105.0)
    gap = float(np.clip(30.0 - 0.3 * (depth - 175.0), 0.0, 40.0)) * rng.uniform(0.7, 1.3)
    width = gap * smoothstep(y, perineum, perineum + 120.0)
    # A cylinder's chord grows as the square root of the distance from its edge.
    edge = np.sqrt(np.clip((np.abs(x) - width) / 25.0, 0.0, 1.0))
    below = smoothstep(y, perineum, perineum + 40.0)
    out = out * (1.0 - below * (1.0 - edge))
    return np.maximum(out, 0.0).astype(np.float32)


def _body(x, y, depth: float, half_width: float) -> np.ndarray:
    """Chord through the trunk dividing into the thighs (water-equivalent mm)."""
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
    return (1.0 - split) * trunk + split * np.minimum(thighs, trunk + 1.0)


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
