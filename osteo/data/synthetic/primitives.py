"""Projected half-chords of simple solids: how much of a body an X-ray through a pixel crosses.

A radiograph integrates attenuation along each ray, so a solid shows as its chord length, not
as a filled silhouette: a tube is bright at its walls, a sphere brightest at its centre. Each
function takes pixel coordinates already expressed in the solid's own frame (mm) and returns
the half-chord (mm, >= 0). Solids of one bone are joined with ``smooth_union``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ellipsoid",
    "ring_tube",
    "smooth_union",
    "smoothstep",
    "sphere",
    "tube",
]


def smoothstep(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, a C1 ramp between."""
    # In place on one temporary: this runs on every pixel of every bone many times over.
    t = np.array(x, dtype=np.float32)  # a copy (0-d for a scalar), then in place
    t -= np.float32(lo)
    t *= np.float32(1.0 / (hi - lo))
    np.clip(t, 0.0, 1.0, out=t)
    square = t * t
    t *= np.float32(-2.0)
    t += np.float32(3.0)
    t *= square
    return t


def _sqrt_pos(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(x, 0.0))


def tube(radial: np.ndarray, radius: np.ndarray | float) -> np.ndarray:
    """A cylinder whose axis lies in the image plane; ``radial`` = distance from the axis."""
    return _sqrt_pos(np.square(radius) - np.square(radial))


def sphere(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    return _sqrt_pos(radius * radius - dx * dx - dy * dy)


def ellipsoid(u: np.ndarray, v: np.ndarray, a: float, b: float, depth: float) -> np.ndarray:
    """Semi-axes ``a`` (along u), ``b`` (along v) in the image plane, ``depth`` along the ray."""
    return depth * _sqrt_pos(1.0 - np.square(u / a) - np.square(v / b))


def ring_tube(
    u: np.ndarray, v: np.ndarray, a: float, b: float, radius: np.ndarray | float
) -> np.ndarray:
    """A tube bent along the ellipse (u/a)^2 + (v/b)^2 = 1, e.g. the pelvic brim.

    Distance to the ellipse is approximated by the radial gap scaled by the local radius,
    accurate to a few percent for the mild eccentricities used here.
    """
    rho = np.sqrt(np.square(u / a) + np.square(v / b)) + 1e-6
    local_radius = np.sqrt(np.square(u) + np.square(v)) / rho
    return tube((rho - 1.0) * local_radius, radius)


def smooth_union(parts: list[np.ndarray]) -> np.ndarray:
    """6-norm of half-chords: the plain maximum away from joins, slightly fuller at joins,
    so that neck, trochanters and shaft blend into one bone without a seam."""
    total = np.zeros_like(parts[0])
    for part in parts:
        square = part * part
        total += square * square * square
    return np.cbrt(np.sqrt(total))
