"""Is a file fit to predict on? A size limit before decoding, quality flags after.

The pixel limit is checked from the header alone, so a 40 000 x 40 000 file (a scanned film
at the wrong resolution, or a corrupt header) is refused before gigabytes are allocated.
Quality flags do not stop a prediction; they say why it may be wrong. What does stop one
(another body part, no pair of femurs, inputs far from training) is the "not assessable" gate,
``osteo.data.assessability``.
"""

from __future__ import annotations

import math

from osteo.data.io import (
    DICOM_SUFFIXES,
    Radiograph,
    RadiographReadError,
    is_dicom_file,
)

__all__ = [
    "MAX_MEGAPIXELS",
    "PLAUSIBLE_SPACING_MM",
    "PLAUSIBLE_FIELD_MM",
    "MIN_SIDE_PX",
    "ImageTooLargeError",
    "declared_size",
    "check_image_size",
    "quality_flags",
]

# A 43 x 43 cm detector at 0.1 mm is 18.5 MP; twice the largest plausible pelvis film, with
# margin. Float32 pixels of 50 MP take 200 MB before resampling.
MAX_MEGAPIXELS = 50.0
# Projection radiographs are 0.1-0.2 mm; the synthetic cohort 0.14-1.0 mm (native to archive;
# any 0.1-1.5 mm on request). Outside this range the spacing is more likely wrong than the
# detector unusual.
PLAUSIBLE_SPACING_MM = (0.05, 2.0)
# An AP pelvis or hip film covers roughly 20-45 cm a side.
PLAUSIBLE_FIELD_MM = (150.0, 700.0)
MIN_SIDE_PX = 128


class ImageTooLargeError(RadiographReadError):
    """The file declares more pixels than the configured limit."""


def declared_size(path) -> tuple[int, int] | None:
    """(rows, columns) from the file header without decoding pixels; None if unknown."""
    try:
        if path.suffix.lower() in DICOM_SUFFIXES or is_dicom_file(path):
            import pydicom

            ds = pydicom.dcmread(
                path,
                stop_before_pixels=True,
                force=True,
                specific_tags=["Rows", "Columns", "NumberOfFrames"],
            )
            rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            return (rows * max(frames, 1), cols) if rows and cols else None
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        depth = math.prod(size[2:]) if len(size) > 2 else 1
        return (int(size[1]) * depth, int(size[0])) if len(size) >= 2 else None
    except Exception:  # noqa: BLE001 - an unreadable header is reported by the real reader
        return None


def check_image_size(path, max_megapixels: float = MAX_MEGAPIXELS) -> None:
    """Raise ``ImageTooLargeError`` when the header declares more than ``max_megapixels``."""
    size = declared_size(path)
    if size is None:
        return
    megapixels = size[0] * size[1] / 1e6
    if megapixels > max_megapixels:
        raise ImageTooLargeError(
            f"{path}: the file declares {size[0]} x {size[1]} pixels ({megapixels:.0f} MP), "
            f"more than the limit of {max_megapixels:g} MP (--max-megapixels); downsample it "
            "or raise the limit"
        )


def quality_flags(radiograph: Radiograph, assumed_spacing_mm: float) -> list[str]:
    """Reasons to distrust a prediction on this image (empty when nothing is unusual).

    ``assumed_spacing_mm`` is what sizes in mm were based on when the file has no spacing.
    """
    flags = []
    rows, cols = radiograph.shape
    spacing = radiograph.spacing
    if min(rows, cols) < MIN_SIDE_PX:
        flags.append(f"unusual size: {rows} x {cols} pixels (fewer than {MIN_SIDE_PX} a side)")
    if spacing is None:
        # The field of view is unknown too, so it is not judged.
        flags.append(
            f"spacing assumed: the file has no pixel spacing, {assumed_spacing_mm:g} mm used "
            "(ROI sizes and hip crops are only right if that is the true spacing)"
        )
        return flags
    lo, hi = PLAUSIBLE_SPACING_MM
    if not all(lo <= s <= hi for s in spacing):
        flags.append(
            f"unusual spacing: {spacing[0]:g} x {spacing[1]:g} mm per pixel "
            f"(expected {lo:g}-{hi:g} mm)"
        )
    if max(spacing) / min(spacing) > 1.1:
        flags.append(f"unusual spacing: non-square pixels ({spacing[0]:g} x {spacing[1]:g} mm)")
    height, width = rows * spacing[0], cols * spacing[1]
    lo, hi = PLAUSIBLE_FIELD_MM
    if not (lo <= height <= hi and lo <= width <= hi):
        flags.append(
            f"unusual size: the image covers {height:.0f} x {width:.0f} mm "
            f"(an AP pelvis or hip film covers {lo:g}-{hi:g} mm a side)"
        )
    return flags
