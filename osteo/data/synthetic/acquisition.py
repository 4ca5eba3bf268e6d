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
    fluence: np.ndarray | None = None,
    motion_mm: float = 0.0,
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
    # In-place float32 arithmetic throughout: at native spacing an image is 7-10 MP.
    primary = np.negative(attenuation, dtype=np.float32)
    np.exp(primary, out=primary)
    if fluence is not None:
        primary *= fluence
        body = body & (fluence > 0.5)
    blur_mm = site.blur_mm * float(study["blur_scale"])
    if motion_mm > 0:
        blur_mm = float(np.hypot(blur_mm, motion_mm))
    blur_px = blur_mm / spacing
    signal = smooth(primary, blur_px)

    thickness = float(study["soft_tissue_mm"]) / REFERENCE_SOFT_TISSUE_MM
    scatter = smooth_large(signal, 35.0 / spacing)
    scatter *= np.float32(site.scatter_fraction * thickness)
    if fluence is not None:
        # The veil is raised by the irradiated patient; behind a blade only a trace arrives.
        scatter *= np.maximum(fluence, np.float32(0.05))
    signal += scatter

    # Quantum noise: detected quanta per pixel = fluence per mm^2 x pixel area, so a coarser
    # pixel is exactly as noisy as the average of the fine pixels it covers.
    quanta = site.photons_per_mm2 * float(study["exposure"]) * spacing**2
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    counted = signal * np.float32(1.0 / quanta)
    np.sqrt(counted, out=counted)
    counted *= noise
    counted += signal
    np.maximum(counted, np.float32(1e-6), out=counted)
    log_image = np.log(counted, out=counted)
    np.negative(log_image, out=log_image)

    # Console: flatten the large-scale range so pelvis and thighs both fit, sharpen edges;
    # both kernels are defined in mm at the detector, whatever the pixel spacing:
    # processed = log + gain * (log - edge low-pass) - compression * range low-pass.
    low = smooth_large(log_image, site.range_kernel_mm / spacing)
    low *= np.float32(site.range_compression)
    edge = smooth(log_image, site.edge_kernel_mm / spacing)
    edge *= np.float32(site.edge_enhancement)
    processed = log_image * np.float32(1.0 + site.edge_enhancement)
    processed -= edge
    processed -= low

    # Auto-ranging ("exposure data recognition"): robust histogram ends map to the tone curve.
    inside = processed[::3, ::3][body[::3, ::3]]
    if inside.size <= 100:
        inside = processed.ravel()
    lo, hi = np.percentile(inside, (0.5, 99.8))
    lo, hi = float(lo), float(hi)  # Python floats keep the arithmetic in float32
    x = processed
    x -= np.float32(lo)
    x *= np.float32(1.0 / max(hi - lo, 1e-6))
    np.clip(x, 0.0, 1.0, out=x)
    slope = 4.0 * site.tone_slope * float(study["contrast"])
    # A sigmoid tone curve centred per site (A slightly above mid-grey: bone detail in the
    # upper half).
    ends = np.tanh(slope / 2.0 * (np.array([0.0, 1.0]) - site.tone_centre))
    top = 2**site.bits_stored - 1
    x -= np.float32(site.tone_centre)
    x *= np.float32(slope / 2.0)
    np.tanh(x, out=x)
    x -= np.float32(ends[0])
    x *= np.float32(top / (ends[1] - ends[0]))
    np.rint(x, out=x)
    if site.photometric == "MONOCHROME1":
        np.subtract(np.float32(top), x, out=x)  # the device stores bone as low values
    return x.astype(np.uint16)
