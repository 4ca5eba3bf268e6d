"""Radiomics features of the four hip ROIs with pyradiomics, driven by a parameter file.

What osteo does before pyradiomics sees a ROI, and why (details in docs/radiomics.md):

- **True 2D images.** A one-slice 3D volume makes pyradiomics skip LoG silently (it needs 4
  pixels along every axis), so the crop goes in as a 2D SimpleITK image, spacing (column, row).
- **Context margin.** The crop is the box plus a margin of 3 of the largest LoG sigmas (or the
  wavelet support), so filter responses inside the ROI come from real neighbouring bone rather
  than from the crop's edge; the mask still covers exactly the box.
- **Normalisation within the ROI.** Radiographs have no absolute grey scale, so the crop is
  z-scored with the mean and standard deviation of the ROI pixels (pyradiomics' own
  ``normalize`` would use every pixel of the crop, margin included).
- **Resampling to the radiomics spacing** (``resampledPixelSpacing`` in the parameter file,
  interpolated with its ``interpolator``). osteo does it itself rather than pyradiomics, whose
  ``resampleImage`` neither anti-aliases nor keeps the box: the grid is anchored on the box's
  edges so the mask covers exactly the box in mm (the spacing is adjusted per axis by at most
  half a pixel over the box), a Gaussian pre-filter removes detail finer than the new grid when
  down-sampling (a Gaussian of variance (S^2 - s^2) / 12 mm^2: the image then has the aperture
  of a detector with S mm pixels, as the coarser site's image has), and
  the z-score below is taken on the resampled pixels.
- **Left hip mirrored.** The patient's left hip is flipped left-right so that both hips have the
  same anatomical orientation; angle-averaged texture is unchanged by a flip, but directional
  filters (wavelet sub-bands, any per-angle setting) are then comparable between sides.

Feature names are ``<side>.<roi>.<pyradiomics name>``, e.g.
``right.neck.log-sigma-2-0-mm-3D_glcm_Correlation`` (the ``-3D`` suffix is pyradiomics' fixed
name for LoG images, also for 2D input). A study vector holds the four ROIs in the order of
``ROI_SLOTS``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from osteo.hashing import digest

__all__ = [
    "SIDES",
    "ROIS",
    "ROI_SLOTS",
    "Box",
    "EXTRACTION_VERSION",
    "RoiExtractionError",
    "RadiomicsExtractor",
    "slot_name",
    "extraction_versions",
]

SIDES = ("right", "left")  # the patient's sides
ROIS = ("neck", "cortex")
ROI_SLOTS: tuple[tuple[str, str], ...] = tuple((side, roi) for side in SIDES for roi in ROIS)
Box = tuple[int, int, int, int]  # (row0, col0, row1, col1), half-open, full-radiograph pixels

# Bump when the preparation below changes the values it hands to pyradiomics (crop, margin,
# resampling, normalisation, mirroring): it is part of every feature-store key.
# 2: resampling to `resampledPixelSpacing` with anti-aliasing, the ROI size checked after it.
EXTRACTION_VERSION = 2

# Sane bounds for a radiomics spacing (mm): finer than any radiograph detector would only
# interpolate; coarser than 5 mm leaves a 12 mm ROI 2 pixels wide.
SPACING_RANGE_MM = (0.05, 5.0)

# Margin around the box, in LoG sigmas: the Gaussian's weight beyond 3 sigma is < 0.3 %.
CONTEXT_SIGMAS = 3.0

logger = logging.getLogger(__name__)


class RoiExtractionError(ValueError):
    """A ROI whose features cannot be computed; ``reason`` says why in plain words."""

    def __init__(self, side: str, roi: str, reason: str):
        super().__init__(f"{slot_name(side, roi)}: {reason}")
        self.side = side
        self.roi = roi
        self.reason = reason


def slot_name(side: str, roi: str) -> str:
    """The prefix of a ROI's feature names, e.g. ``right.neck``."""
    return f"{side}.{roi}"


def extraction_versions() -> dict[str, str]:
    """Versions of everything that changes feature values; part of every store key.

    Not the run's ``osteo.pipeline.context.library_versions()``: these are the versions as
    the libraries report them, under the names the store has always hashed; reading them any
    other way would change every stored feature's key."""
    import pywt
    import radiomics

    import osteo

    return {
        "pyradiomics": str(radiomics.__version__),
        "SimpleITK": sitk.Version_VersionString(),
        "numpy": np.__version__,
        "PyWavelets": pywt.__version__,
        "osteo": osteo.__version__,
        "extraction": str(EXTRACTION_VERSION),
    }


def _check_settings(settings: Mapping[str, Any], params_path: Path) -> None:
    """Refuse settings that contradict osteo's ROI preparation (see the module docstring)."""
    problems = []
    if settings.get("binCount") is None:
        problems.append(
            "set `binCount` (e.g. 32): radiographs have no absolute grey scale, and a bin width "
            "on ROI-normalised values leaves only a few grey levels"
        )
    if settings.get("normalize", False):
        problems.append(
            "remove `normalize: true`: osteo z-scores within the ROI itself, pyradiomics would "
            "renormalise over the whole crop including the context margin"
        )
    if settings.get("force2D", False):
        problems.append(
            "remove `force2D: true`: osteo passes true 2D images, on which force2D keeps a "
            "single GLCM direction and turns the wavelet into a 1D transform"
        )
    if problems:
        raise ValueError(f"{params_path}: " + "; ".join(problems))


def resampled_spacing(settings: Mapping[str, Any], params_path: Path) -> tuple[float, float] | None:
    """The parameter file's ``resampledPixelSpacing`` as (row, column) mm, or None (no
    resampling). pyradiomics orders it (x, y) = (column, row); osteo's images are 2D, so it
    takes two values (a 3D file's third value, the slice axis, must be 0: pyradiomics' "keep")."""
    value = settings.get("resampledPixelSpacing")
    if value is None:
        return None
    low, high = SPACING_RANGE_MM
    expected = (
        f"expected two spacings in mm (x = column, y = row), each {low:g}-{high:g} mm, "
        f"e.g. [0.7, 0.7]"
    )
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(
            f"{params_path}: setting resampledPixelSpacing = {value!r}: {expected}"
        ) from None
    if len(values) == 3 and values[2] == 0:
        values = values[:2]
    if len(values) != 2 or not all(math.isfinite(v) and low <= v <= high for v in values):
        hint = ""
        if any(v == 0 for v in values):
            hint = " (0, pyradiomics' 'keep the original spacing', lets each site keep its own)"
        raise ValueError(
            f"{params_path}: setting resampledPixelSpacing = {value!r}: {expected}{hint}"
        )
    return values[1], values[0]


def _interpolator(settings: Mapping[str, Any], params_path: Path) -> int:
    """pyradiomics' ``interpolator`` setting (a SimpleITK name such as ``sitkBSpline``, or its
    integer value) as a SimpleITK interpolator."""
    name = settings.get("interpolator", "sitkBSpline")
    if isinstance(name, str):
        value = getattr(sitk, name, None)
        if name.startswith("sitk") and isinstance(value, int):
            return value
    elif isinstance(name, int) and not isinstance(name, bool):
        return name
    raise ValueError(
        f"{params_path}: setting interpolator = {name!r}: expected a SimpleITK interpolator "
        "name such as sitkBSpline or sitkLinear"
    )


class RadiomicsExtractor:
    """pyradiomics on the hip ROIs of one radiograph, configured by a parameter file.

    One instance per process (pyradiomics extractors are not shared between threads). The
    constructor runs one probe extraction on a synthetic image to learn the ordered feature
    names, so ``feature_names`` is known before any radiograph is read.
    """

    def __init__(
        self,
        params_path: str | Path,
        *,
        mirror_left: bool = True,
        min_roi_size_px: int = 5,
        antialias: bool = True,
    ):
        from radiomics import featureextractor

        self.params_path = Path(params_path)
        self.mirror_left = bool(mirror_left)
        self.min_roi_size_px = int(min_roi_size_px)
        # Off only to measure what the pre-filter does (benchmarks/resolution_study.py).
        self.antialias = bool(antialias)
        # osteo reports skipped filters and failed ROIs itself, with the ROI's name.
        logging.getLogger("radiomics").setLevel(logging.ERROR)
        # pyradiomics reads and validates the file itself; what it resolved (its defaults
        # included) is what osteo checks and hashes, so the two can never disagree.
        try:
            self._pyradiomics = featureextractor.RadiomicsFeatureExtractor(str(self.params_path))
        except Exception as exc:  # pykwalify's SchemaError names the setting's path
            if not self.params_path.is_file():
                raise
            reason = " ".join(str(exc).split())
            raise ValueError(
                f"{self.params_path}: not a valid pyradiomics parameter file: {reason}"
            ) from exc
        self.settings: dict[str, Any] = dict(self._pyradiomics.settings)
        self.image_types: dict[str, dict[str, Any]] = {
            name: dict(args or {}) for name, args in self._pyradiomics.enabledImagetypes.items()
        }
        _check_settings(self.settings, self.params_path)
        self.spacing_mm = resampled_spacing(self.settings, self.params_path)
        self.interpolator = _interpolator(self.settings, self.params_path)
        # osteo resamples in prepare_roi (see the module docstring); pyradiomics must not again.
        self._pyradiomics.settings["resampledPixelSpacing"] = None
        self.roi_feature_names: tuple[str, ...] = self._probe_feature_names()
        self.feature_names: tuple[str, ...] = tuple(
            f"{slot_name(side, roi)}.{name}"
            for side, roi in ROI_SLOTS
            for name in self.roi_feature_names
        )
        self.fingerprint: dict[str, Any] = {
            "settings": self.settings,
            "image_types": self.image_types,
            "features": self._pyradiomics.enabledFeatures,
            "mirror_left": self.mirror_left,
            "min_roi_size_px": self.min_roi_size_px,
            "context_sigmas": CONTEXT_SIGMAS,
            "resampling": {
                "spacing_mm": self.spacing_mm,
                "antialias": "variance=(S^2-s^2)/12" if self.antialias else None,
            },
            "versions": extraction_versions(),
        }
        self.fingerprint_digest = digest(self.fingerprint)

    # ------------------------------------------------------------------ configuration

    @property
    def options(self) -> dict[str, Any]:
        """Constructor keyword arguments: enough to rebuild this extractor in a worker."""
        return {
            "mirror_left": self.mirror_left,
            "min_roi_size_px": self.min_roi_size_px,
            "antialias": self.antialias,
        }

    def context_px(self, spacing: tuple[float, float] | None) -> int:
        """Margin (pixels) the filters need around a box at this spacing."""
        row_mm, col_mm = _spacing_or_unit(spacing)
        margin = 1  # gradient, LBP and friends look one pixel out
        if "LoG" in self.image_types:
            sigmas = {**self.settings, **self.image_types["LoG"]}.get("sigma") or []
            if sigmas:
                margin = max(margin, math.ceil(CONTEXT_SIGMAS * max(sigmas) / min(row_mm, col_mm)))
        if "Wavelet" in self.image_types:
            import pywt

            wavelet_args = {**self.settings, **self.image_types["Wavelet"]}
            dec_len = pywt.Wavelet(wavelet_args.get("wavelet", "coif1")).dec_len
            levels = wavelet_args.get("start_level", 0) + wavelet_args.get("level", 1)
            margin = max(margin, (dec_len - 1) * 2 ** (levels - 1))
        return margin

    def _probe_feature_names(self) -> tuple[str, ...]:
        # A 64x64 px noise ROI (at the radiomics spacing, else 1 mm) with full context: large
        # enough for any sensible filter.
        spacing = self.spacing_mm or (1.0, 1.0)
        size, margin = 64, self.context_px(spacing)
        pixels = np.random.default_rng(0).normal(size=(size + 2 * margin,) * 2).astype(np.float32)
        box = (margin, margin, margin + size, margin + size)
        image, mask = self.prepare_roi(pixels, box, "right", "neck", spacing)
        try:
            raw = self._pyradiomics.execute(image, mask)
        except Exception as exc:  # pyradiomics raises many types for a bad file
            raise ValueError(f"{self.params_path}: probe extraction failed: {exc}") from exc
        names = tuple(k for k in raw if not k.startswith("diagnostics_"))
        if not names:
            raise ValueError(f"{self.params_path}: the parameter file enables no features")
        return names

    # ------------------------------------------------------------------ one ROI

    def prepare_roi(
        self,
        pixels: np.ndarray,
        box: Sequence[int],
        side: str,
        roi: str,
        spacing: tuple[float, float] | None = None,
    ) -> tuple[sitk.Image, sitk.Image]:
        """The 2D image (normalised crop, mirrored if left) and mask pyradiomics receives."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        if pixels.ndim != 2:
            raise RoiExtractionError(
                side, roi, f"expected a 2D radiograph, got shape {pixels.shape}"
            )
        row0, col0, row1, col1 = self._checked_box(pixels.shape, box, side, roi)
        native = _spacing_or_unit(spacing)
        row_span, col_span = self._context_span(pixels.shape, (row0, col0, row1, col1), native)
        if not np.isfinite(pixels[row_span, col_span]).all():
            raise RoiExtractionError(side, roi, "the ROI or its context contains NaN/inf pixels")
        if self.spacing_mm is None:
            crop, inside, out_spacing = self._native_crop(pixels, (row0, col0, row1, col1), native)
        else:
            crop, inside, out_spacing = self._resampled_crop(
                pixels, (row0, col0, row1, col1), native
            )
        roi_shape = (inside[0].stop - inside[0].start, inside[1].stop - inside[1].start)
        if min(roi_shape) < self.min_roi_size_px:
            at = (
                ""
                if self.spacing_mm is None
                else f" at the radiomics spacing {out_spacing[0]:.3g} x {out_spacing[1]:.3g} mm"
            )
            raise RoiExtractionError(
                side,
                roi,
                f"ROI of {roi_shape[0]}x{roi_shape[1]} px{at} is too small "
                f"(minimum {self.min_roi_size_px} px a side)",
            )
        roi_pixels = crop[inside]
        low, high = float(roi_pixels.min()), float(roi_pixels.max())
        if high == low:
            raise RoiExtractionError(side, roi, f"constant intensity (every pixel is {low:g})")
        crop = (crop - roi_pixels.mean()) / roi_pixels.std()
        mask = np.zeros(crop.shape, dtype=np.uint8)
        mask[inside] = 1
        if side == "left" and self.mirror_left:
            crop, mask = crop[:, ::-1], mask[:, ::-1]

        row_mm, col_mm = out_spacing
        image = sitk.GetImageFromArray(np.ascontiguousarray(crop))
        image.SetSpacing((col_mm, row_mm))  # SimpleITK orders axes x (column), y (row)
        mask_image = sitk.GetImageFromArray(np.ascontiguousarray(mask))
        mask_image.CopyInformation(image)
        return image, mask_image

    def _context_span(
        self, shape: tuple[int, ...], box: Box, spacing: tuple[float, float]
    ) -> tuple[slice, slice]:
        """The input pixels a ROI's features depend on: the box plus the context the filters
        need (in mm, so the same whether resampled or not) and a few for interpolation."""
        row0, col0, row1, col1 = box
        margin_mm = self.context_px((1.0, 1.0))  # 1 mm pixels: the margin in mm, rounded up
        rows = math.ceil(margin_mm / spacing[0]) + 3
        cols = math.ceil(margin_mm / spacing[1]) + 3
        return (
            slice(max(0, row0 - rows), min(shape[0], row1 + rows)),
            slice(max(0, col0 - cols), min(shape[1], col1 + cols)),
        )

    def _native_crop(
        self, pixels: np.ndarray, box: Box, spacing: tuple[float, float]
    ) -> tuple[np.ndarray, tuple[slice, slice], tuple[float, float]]:
        """The box plus its context margin at the image's own spacing (clipped at the border)."""
        row0, col0, row1, col1 = box
        margin = self.context_px(spacing)
        height, width = pixels.shape
        top, left = max(0, row0 - margin), max(0, col0 - margin)
        bottom, right = min(height, row1 + margin), min(width, col1 + margin)
        crop = np.asarray(pixels[top:bottom, left:right], dtype=np.float64)
        inside = (slice(row0 - top, row1 - top), slice(col0 - left, col1 - left))
        return crop, inside, spacing

    def _resampled_crop(
        self, pixels: np.ndarray, box: Box, spacing: tuple[float, float]
    ) -> tuple[np.ndarray, tuple[slice, slice], tuple[float, float]]:
        """The box plus its context margin on a grid of about ``self.spacing_mm``.

        Per axis, the box's extent L mm gets n = round(L / target) pixels of exactly L / n mm,
        the first starting at the box's edge, so the mask covers exactly the box in mm. The
        margin (in new pixels) is clipped where it would leave the radiograph. When
        down-sampling, a Gaussian of variance (S^2 - s^2) / 12 (from s mm to S mm pixels) is
        applied first; interpolation uses the parameter file's ``interpolator``.
        """
        from scipy.ndimage import gaussian_filter

        assert self.spacing_mm is not None
        axes = ((box[0], box[2], pixels.shape[0]), (box[1], box[3], pixels.shape[1]))
        out_spacing, n_roi, before, after = [], [], [], []
        for axis, (start, stop, _) in enumerate(axes):
            extent_mm = (stop - start) * spacing[axis]
            n = max(1, round(extent_mm / self.spacing_mm[axis]))
            out_spacing.append(extent_mm / n)
            n_roi.append(n)
        out_spacing_t = (out_spacing[0], out_spacing[1])
        margin = self.context_px(out_spacing_t)
        sigmas_px, native_span = [], []
        for axis, (start, stop, size) in enumerate(axes):
            ratio = out_spacing[axis] / spacing[axis]  # input pixels per output pixel
            # Whole output pixels that fit between the box and the radiograph's border.
            before.append(min(margin, math.floor(start / ratio + 1e-9)))
            after.append(min(margin, math.floor((size - stop) / ratio + 1e-9)))
            # Anti-aliasing: as if the detector had pixels of the new size. A pixel of width w
            # averages over a box of variance w^2 / 12, so a Gaussian of variance
            # (S^2 - s^2) / 12 brings an s mm image to an S mm aperture; in input pixels:
            sigma = math.sqrt(max(0.0, ratio**2 - 1.0) / 12.0)
            sigmas_px.append(sigma if self.antialias else 0.0)
            # Input rows/columns the output grid and the interpolation/filter kernels touch.
            pad = math.ceil(3 * sigmas_px[-1]) + 3
            first = max(0, math.floor(start - before[-1] * ratio) - pad)
            last = min(size, math.ceil(stop + after[-1] * ratio) + pad)
            native_span.append((first, last))
        (top, bottom), (left, right) = native_span
        crop = np.asarray(pixels[top:bottom, left:right], dtype=np.float64)
        if any(sigmas_px):
            crop = gaussian_filter(crop, sigmas_px, mode="nearest")
        image = sitk.GetImageFromArray(crop)
        image.SetSpacing((spacing[1], spacing[0]))
        # Physical position = pixel index x spacing (pixel centres), for input and output.
        image.SetOrigin((left * spacing[1], top * spacing[0]))
        origin = [
            (start - 0.5) * spacing[axis] + (0.5 - before[axis]) * out_spacing[axis]
            for axis, start in enumerate((box[0], box[1]))
        ]
        out_size = [before[axis] + n_roi[axis] + after[axis] for axis in range(2)]
        resampled = sitk.Resample(
            image,
            [out_size[1], out_size[0]],
            sitk.Transform(),
            self.interpolator,
            (origin[1], origin[0]),
            (out_spacing[1], out_spacing[0]),
            image.GetDirection(),
            float("nan"),  # never used: the grid lies inside the crop (a NaN would be reported)
            sitk.sitkFloat64,
        )
        out = sitk.GetArrayFromImage(resampled)
        inside = (
            slice(before[0], before[0] + n_roi[0]),
            slice(before[1], before[1] + n_roi[1]),
        )
        return out, inside, out_spacing_t

    def _checked_box(self, shape: tuple[int, ...], box: Sequence[int], side: str, roi: str) -> Box:
        if len(box) != 4:
            raise RoiExtractionError(side, roi, f"box must be (row0, col0, row1, col1), got {box}")
        row0, col0, row1, col1 = (int(v) for v in box)
        height, width = shape
        if row1 <= row0 or col1 <= col0:
            raise RoiExtractionError(side, roi, f"empty box {tuple(box)}")
        if row0 < 0 or col0 < 0 or row1 > height or col1 > width:
            raise RoiExtractionError(
                side, roi, f"box {tuple(box)} lies outside the {height}x{width} radiograph"
            )
        return row0, col0, row1, col1

    def extract_roi(
        self,
        pixels: np.ndarray,
        box: Sequence[int],
        side: str,
        roi: str,
        spacing: tuple[float, float] | None = None,
    ) -> dict[str, float]:
        """Features of one ROI, named ``<side>.<roi>.<feature>``, in ``feature_names`` order.

        ``spacing`` is (row, column) in mm; ``None`` means unknown, and LoG sigmas then act in
        pixels. Raises ``RoiExtractionError`` with the reason when the ROI cannot be used.
        """
        image, mask = self.prepare_roi(pixels, box, side, roi, spacing)
        try:
            raw = self._pyradiomics.execute(image, mask)
        except Exception as exc:  # pyradiomics signals bad ROIs with several exception types
            raise RoiExtractionError(side, roi, f"pyradiomics failed: {exc}") from exc
        missing = [name for name in self.roi_feature_names if name not in raw]
        if missing:
            image_types = sorted({name.split("_", 1)[0] for name in missing})
            raise RoiExtractionError(
                side,
                roi,
                f"pyradiomics skipped {', '.join(image_types)} (ROI plus context too small for "
                f"the filter at this spacing?)",
            )
        values = {name: float(raw[name]) for name in self.roi_feature_names}
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise RoiExtractionError(side, roi, f"non-finite feature values: {shown}")
        prefix = slot_name(side, roi)
        return {f"{prefix}.{name}": value for name, value in values.items()}

    # ------------------------------------------------------------------ one study

    def extract_study(
        self,
        pixels: np.ndarray,
        boxes: Mapping[tuple[str, str], Sequence[int]],
        spacing: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """float32 vector of ``len(feature_names)``; raises on the first ROI that fails."""
        values, failures = self.extract_study_with_failures(pixels, boxes, spacing)
        if failures:
            slot, reason = next(iter(failures.items()))
            side, roi = slot.split(".")
            raise RoiExtractionError(side, roi, reason)
        return values

    def extract_study_with_failures(
        self,
        pixels: np.ndarray,
        boxes: Mapping[tuple[str, str], Sequence[int]],
        spacing: tuple[float, float] | None = None,
    ) -> tuple[np.ndarray, dict[str, str]]:
        """Like ``extract_study``, but a failed ROI leaves NaN and its reason in the dict.

        The dict maps ``right.neck``-style slot names to reasons; a slot without a box counts
        as failed ("no ROI box").
        """
        n_roi = len(self.roi_feature_names)
        values = np.full(len(ROI_SLOTS) * n_roi, np.nan, dtype=np.float32)
        failures: dict[str, str] = {}
        for index, (side, roi) in enumerate(ROI_SLOTS):
            box = boxes.get((side, roi))
            if box is None:
                failures[slot_name(side, roi)] = "no ROI box"
                continue
            try:
                features = self.extract_roi(pixels, box, side, roi, spacing)
            except RoiExtractionError as exc:
                failures[slot_name(side, roi)] = exc.reason
                continue
            values[index * n_roi : (index + 1) * n_roi] = list(features.values())
        return values, failures


def _spacing_or_unit(spacing: tuple[float, float] | None) -> tuple[float, float]:
    if spacing is None:
        return 1.0, 1.0
    row_mm, col_mm = (float(v) for v in spacing)
    if not (row_mm > 0 and col_mm > 0 and math.isfinite(row_mm) and math.isfinite(col_mm)):
        raise ValueError(f"pixel spacing must be two positive numbers (mm), got {spacing}")
    return row_mm, col_mm
