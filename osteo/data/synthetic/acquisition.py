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

from .presets import SiteAcquisition
from .resample import smooth, smooth_large

__all__ = ["acquire"]

REFERENCE_SOFT_TISSUE_MM = 200.0


def acquire(
    attenuation: np.ndarray,
    body: np.ndarray,
    site: SiteAcquisition,
    study: Mapping,
    rng: np.random.Generator,
) -> np.ndarray:
    """Stored pixel values (uint16) for a map of line-integrated attenuation (unitless).

    ``body`` marks the pixels behind the patient: the console ranges on those, so the
    unattenuated beam outside the body saturates to black as on real films.
    """
    spacing = site.spacing_mm
    primary = np.exp(-attenuation.astype(np.float32))
    blur_px = site.blur_mm * float(study["blur_scale"]) / spacing
    primary = smooth(primary, blur_px)

    thickness = float(study["soft_tissue_mm"]) / REFERENCE_SOFT_TISSUE_MM
    scatter = site.scatter_fraction * thickness * smooth_large(primary, 35.0 / spacing)
    signal = primary + scatter

    # Quantum noise: detected quanta per pixel = fluence per mm^2 x pixel area, so a coarser
    # pixel is exactly as noisy as the average of the fine pixels it covers.
    quanta = site.photons_per_mm2 * float(study["exposure"]) * spacing**2
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    counted = signal + np.sqrt(signal / np.float32(quanta)) * noise
    log_image = -np.log(np.maximum(counted, 1e-6))

    # Console: flatten the large-scale range so pelvis and thighs both fit, sharpen edges;
    # both kernels are defined in mm at the detector, whatever the pixel spacing.
    low = smooth_large(log_image, site.range_kernel_mm / spacing)
    detail = log_image - smooth(log_image, site.edge_kernel_mm / spacing)
    processed = log_image - site.range_compression * low + site.edge_enhancement * detail

    # Auto-ranging ("exposure data recognition"): robust histogram ends map to the tone curve.
    inside = processed[body] if body.sum() > 100 else processed.ravel()
    lo, hi = np.percentile(inside[::3], (0.5, 99.8))
    lo, hi = float(lo), float(hi)  # Python floats keep the arithmetic in float32
    x = np.clip((processed - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    slope = 4.0 * site.tone_slope * float(study["contrast"])
    # A sigmoid tone curve centred per site (A slightly above mid-grey: bone detail in the
    # upper half).
    centre = np.float32(site.tone_centre)
    curve = np.tanh(np.float32(slope / 2.0) * (x - centre))
    ends = np.tanh(slope / 2.0 * (np.array([0.0, 1.0]) - site.tone_centre))
    x = (curve - np.float32(ends[0])) / np.float32(ends[1] - ends[0])
    top = 2**site.bits_stored - 1
    stored = np.rint(x * top).astype(np.uint16)
    if site.photometric == "MONOCHROME1":
        stored = (top - stored).astype(np.uint16)  # the device stores bone as low values
    return stored
