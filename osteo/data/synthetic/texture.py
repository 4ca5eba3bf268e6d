"""Projected trabecular texture at its physical scale, pre-filtered for the output pixel.

Trabeculae are 0.1-0.3 mm thick and 0.5-1.5 mm apart, the spacing growing with bone loss
(Tb.Th, Tb.Sp from micro-CT of the femoral head and neck: Hildebrand et al., JBMR 1999). A
radiograph sums them through 20-40 mm of bone, so what shows is a random texture whose power
spectrum has two parts: a band around 1/Tb.Sp from the (partly aligned) trabeculae of a group,
rolled off above ~1/(pi Tb.Th) by their thickness, and a fractal, ``f^-(H+1)`` low-frequency
part from the summation of many layers (fractional Brownian surface with Hurst exponent H;
Pothuaud et al., JBMR 2000; Benhamou et al., JBMR 2001). Within a trabecular group the
structures are aligned along the group's streamlines: the spectrum is stretched by
``elongation`` along them.

The field is defined in mm, as a sum of Fourier modes on a fixed periodic lattice (period
``PERIOD_MM``) whose random coefficients are drawn in nested frequency blocks from the field's
own seed, so the same seed gives the same structure at every output spacing. Before it is
sampled at pixel centres it is low-pass filtered for the output pixel (the pixel aperture plus
anti-aliasing, a Gaussian of ``APERTURE`` x spacing): a coarse render then holds what a native
render blurred and down-sampled holds, and nothing that would alias.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, ndimage

__all__ = [
    "APERTURE",
    "TrabecularField",
    "fractal_noise",
    "pixel_filter_sigma_mm",
    "sample_periodic",
]

# Pixel pre-filter: a Gaussian of 0.5 x spacing (sigma). A square pixel alone is a box of
# sigma spacing / sqrt(12) = 0.29 x spacing; the extra width is the anti-aliasing low-pass
# (at the Nyquist frequency the response is exp(-pi^2 / 8) = 0.29, at 1/spacing 0.007).
APERTURE = 0.5
# Above 3.5 cycles/mm neither detector leaves anything (MTF exp(-2 pi^2 sigma^2 f^2) <= 0.01
# for the sites' blur sigma >= 0.2 mm), so the field is not synthesised beyond it.
MAX_FREQUENCY = 3.5  # cycles/mm


def pixel_filter_sigma_mm(spacing_mm: float) -> float:
    """The Gaussian (sigma, mm) standing for one output pixel's aperture and anti-aliasing."""
    return APERTURE * spacing_mm


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

    Used for smooth, large-scale variation (soft-tissue planes). Axis 0 is the streak
    direction: structures are ``elongation`` times longer along it. ``cutoff_mm`` is the
    finest wavelength kept; ``largest_mm`` the coarsest.
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


def _radial_power(power, elongation: float) -> float:
    """Sum of ``power(f)`` over the lattice modes, per mm^2 of period squared (an integral).

    With f = |(elongation * fu, fv)| the plane integral is (2 pi / elongation) int power f df.
    """
    f = np.linspace(1e-4, 20.0, 4001)  # beyond 20 cycles/mm both parts are negligible
    return float(2.0 * np.pi / elongation * np.trapezoid(power(f) * f, f))


class TrabecularField:
    """One trabecular group's projected texture, a periodic field in mm (u along the streaks).

    ``spacing_mm`` and ``thickness_mm`` are the trabecular spacing and thickness, ``hurst``
    the low-frequency fractal exponent, ``band_share`` the share of the (unfiltered) variance
    in the trabecular band, ``pixel_mm`` the output pixel spacing it is pre-filtered for. The
    unfiltered field has unit variance; the filtered one keeps what survives the pixel.
    """

    PERIOD_MM = 48.0
    FIRST_BLOCK = 12  # lattice index half-width of the first block of coefficients
    LARGEST_MM = 8.0  # beyond ~8 mm the groups' layout, not the texture, sets the density

    def __init__(
        self,
        seed: int,
        spacing_mm: float,
        thickness_mm: float,
        hurst: float,
        elongation: float,
        pixel_mm: float,
        band_share: float = 0.6,
    ):
        f0 = 1.0 / spacing_mm

        def band(f):
            # Gaussian band around 1/Tb.Sp; the trabecular profile (a ~thickness-wide bar,
            # sinc(pi f t) ~ exp(-(pi f t)^2 / 6)) rolls it off at high frequency.
            shape = np.exp(-0.5 * np.square((f - f0) / (0.35 * f0)))
            return np.square(shape * np.exp(-np.square(np.pi * f * thickness_mm) / 6.0))

        def fractal(f):
            low = np.power(f, -(hurst + 1.0)) * (1.0 - np.exp(-np.square(f * self.LARGEST_MM)))
            return np.square(low * np.exp(-np.square(f / f0)))

        area = self.PERIOD_MM**2
        band_gain = np.sqrt(band_share / (area * _radial_power(band, elongation)))
        fractal_gain = np.sqrt((1.0 - band_share) / (area * _radial_power(fractal, elongation)))
        sigma = pixel_filter_sigma_mm(pixel_mm)

        f_max = min(MAX_FREQUENCY, 1.0 / pixel_mm)
        k_max = int(np.ceil(f_max * self.PERIOD_MM))
        coefficients = self._coefficients(seed, k_max)
        k = np.arange(-k_max, k_max + 1)
        fu = (k / self.PERIOD_MM)[:, None]
        fv = (k / self.PERIOD_MM)[None, :]
        f = np.sqrt(np.square(fu * elongation) + np.square(fv)) + 1e-9
        amplitude = np.sqrt(band_gain**2 * band(f) + fractal_gain**2 * fractal(f))
        # The pixel aperture acts on true (isotropic) frequencies, not the stretched ones.
        amplitude *= np.exp(-2.0 * np.pi**2 * sigma**2 * (np.square(fu) + np.square(fv)))
        amplitude[k_max, k_max] = 0.0  # zero mean: the groups' layout sets the mean density

        n = fft.next_fast_len(max(64, 4 * k_max))
        grid = np.zeros((n, n), dtype=np.complex64)
        index = np.mod(k, n)
        grid[np.ix_(index, index)] = coefficients * amplitude
        # Re(sum c_k A_k e^{i k x}) with E|Re(c e^{i.})|^2 = 1: the variance is sum A_k^2.
        self.field = np.ascontiguousarray(fft.ifft2(grid, workers=1).real * (n * n)).astype(
            np.float32
        )
        self.step_mm = self.PERIOD_MM / n

    @classmethod
    def _coefficients(cls, seed: int, k_max: int) -> np.ndarray:
        """Complex standard normals for lattice indices -k_max..k_max, the same at any k_max.

        Block j holds indices up to FIRST_BLOCK * 2**j and comes from its own stream; it
        contributes only the modes outside block j-1 (written largest first, so each smaller
        block overwrites the centre of the one before).
        """
        levels = 0
        while cls.FIRST_BLOCK * 2**levels < k_max:
            levels += 1
        out = np.empty((2 * k_max + 1, 2 * k_max + 1), dtype=np.complex64)
        for level in range(levels, -1, -1):
            half = cls.FIRST_BLOCK * 2**level
            draw = np.random.default_rng([seed, level]).standard_normal(
                (2, 2 * half + 1, 2 * half + 1), dtype=np.float32
            )
            keep = min(half, k_max)
            inner = slice(half - keep, half + keep + 1)
            window = slice(k_max - keep, k_max + keep + 1)
            out[window, window].real = draw[0, inner, inner]
            out[window, window].imag = draw[1, inner, inner]
        return out

    def __call__(self, u_mm: np.ndarray, v_mm: np.ndarray) -> np.ndarray:
        return sample_periodic(self.field, u_mm, v_mm, self.step_mm)
