"""From attenuation to stored pixel values: the detector physics and the console processing.

Order of events as in a real exposure: the primary beam is attenuated (Beer-Lambert), blurred
by the focal spot and detector, joined by scatter (a low-frequency veil that lowers contrast,
more behind thick patients), counted with quantum (Poisson) noise, log-transformed, then
processed by the console: dynamic range compression (subtracting a heavily smoothed copy, as in
multi-frequency processing), unsharp masking, auto-ranging on the histogram, a tone curve, and
quantisation to the detector's bits. Sites differ in every step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from .presets import SiteAcquisition
from .resample import smooth_large

__all__ = ["acquire"]

REFERENCE_SOFT_TISSUE_MM = 200.0


def acquire(
    attenuation: np.ndarray,
    body: np.ndarray,
    site: SiteAcquisition,
    study: Mapping,
    rng: np.random.Generator,
    fluence: np.ndarray | None = None,
) -> np.ndarray:
    """Stored pixel values (uint16) for a map of line-integrated attenuation (unitless).

    ``body`` marks the pixels behind the patient: the console ranges on those, so the
    unattenuated beam outside the body saturates to black as on real films. ``fluence``
    (``clutter.collimation_fluence``) is the fraction of the primary beam the collimator lets
    through: behind the blades the primary is blocked and only a trace (5%) of the scatter
    veil arrives, and the console ranges on the exposed field only, so those regions come out
    unexposed (white).
    """
    spacing = site.spacing_mm
    primary = np.exp(-attenuation.astype(np.float32))
    if fluence is not None:
        primary = primary * fluence
        body = body & (fluence > 0.5)
    blur_px = site.blur_mm * float(study["blur_scale"]) / spacing
    primary = ndimage.gaussian_filter(primary, blur_px, mode="nearest")

    thickness = float(study["soft_tissue_mm"]) / REFERENCE_SOFT_TISSUE_MM
    scatter = site.scatter_fraction * thickness * smooth_large(primary, 35.0 / spacing)
    if fluence is not None:
        # The veil is raised by the irradiated patient; behind a blade only a trace arrives.
        scatter = scatter * np.maximum(fluence, np.float32(0.05))
    signal = primary + scatter

    quanta = site.photons_per_pixel * float(study["exposure"]) * (spacing / 1.0) ** 2
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    counted = signal + np.sqrt(signal / np.float32(quanta)) * noise
    log_image = -np.log(np.maximum(counted, 1e-6))

    # Console: flatten the large-scale range so pelvis and thighs both fit, sharpen edges.
    low = smooth_large(log_image, 30.0 / spacing)
    detail = log_image - ndimage.gaussian_filter(log_image, 2.0 / spacing, mode="nearest")
    processed = log_image - site.range_compression * low + site.edge_enhancement * detail

    # Auto-ranging ("exposure data recognition"): robust histogram ends map to the tone curve.
    inside = processed[body] if body.sum() > 100 else processed.ravel()
    lo, hi = np.percentile(inside[::3], (0.5, 99.8))
    lo, hi = float(lo), float(hi)  # Python floats keep the arithmetic in float32
    x = np.clip((processed - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    slope = 4.0 * site.tone_slope * float(study["contrast"])
    # A sigmoid tone curve centred slightly above mid-grey (bone detail in the upper half).
    curve = np.tanh(np.float32(slope / 2.0) * (x - np.float32(0.55)))
    ends = np.tanh(slope / 2.0 * (np.array([0.0, 1.0]) - 0.55))
    x = (curve - np.float32(ends[0])) / np.float32(ends[1] - ends[0])
    top = 2**site.bits_stored - 1
    stored = np.rint(x * top).astype(np.uint16)
    if site.photometric == "MONOCHROME1":
        stored = (top - stored).astype(np.uint16)  # the device stores bone as low values
    return stored
