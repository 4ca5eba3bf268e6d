"""Read a radiograph from DICOM, PNG/TIFF/JPEG or NIfTI/NRRD/MHA into float32 pixels.

Every reader returns the same thing: a 2D float32 array in which bone is bright, the pixel
spacing in mm (``(row, column)``, or ``None`` with a warning when the file does not say), and
the few tags the pipeline uses. Patient names and identifiers are never copied into the tags.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Radiograph",
    "RadiographReadError",
    "MissingSpacingWarning",
    "read_radiograph",
    "is_dicom_file",
    "sniff_format",
    "png_spacing",
    "DEFAULT_MAX_MEGAPIXELS",
    "set_max_megapixels",
    "failure_reason",
    "DICOM_SUFFIXES",
    "ITK_SUFFIXES",
]

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
ITK_SUFFIXES = {
    ".png",
    ".tif",
    ".tiff",
    ".jpg",
    ".jpeg",
    ".nii",
    ".nii.gz",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
}

# Which packages decode which compressed transfer syntaxes in pydicom (pydicom >= 3).
_DECODER_HINTS = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg (or pillow)",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg (or pillow)",  # JPEG extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg (or pillow)",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg (or pillow)",  # JPEG 2000
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE (pydicom also has a native decoder)
}
_DEFAULT_DECODER_HINT = "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg"

# The largest image the pipeline decodes. A 43 x 43 cm detector at 0.1 mm is 18.5 MP and a
# film scanned at 600 dpi about 55 MP; float32 pixels of 60 MP take 240 MB. A header that
# declares more (a corrupt or hostile file) is refused before a byte of pixels is decoded.
# The pipeline sets it from ``data.max_megapixels``; ``read_radiograph`` callers may override.
DEFAULT_MAX_MEGAPIXELS = 60.0
_max_megapixels = DEFAULT_MAX_MEGAPIXELS


def set_max_megapixels(limit: float) -> None:
    """Set the process-wide pixel limit (``data.max_megapixels``) used by ``read_radiograph``."""
    global _max_megapixels
    if not limit > 0:
        raise ValueError(f"max_megapixels must be > 0, got {limit!r}")
    _max_megapixels = float(limit)


# Magic numbers: the file's first bytes, not its name, choose the decoder.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)
_ITK_IO = {"png": "PNGImageIO", "jpeg": "JPEGImageIO", "tiff": "TIFFImageIO"}


class RadiographReadError(ValueError):
    """A file could not be read as a single greyscale radiograph; the message names the file."""


class MissingSpacingWarning(UserWarning):
    """A radiograph carries no pixel spacing: sizes in mm (ROIs, resampling) are guesses."""


@dataclass
class Radiograph:
    pixels: np.ndarray  # float32, (rows, columns), bone bright
    spacing: tuple[float, float] | None  # (row, column) in mm
    tags: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.pixels.shape)  # type: ignore[return-value]


def is_dicom_file(path: Path) -> bool:
    """DICOM Part 10 files carry 'DICM' at byte 128; bare datasets are recognised by suffix."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def failure_reason(err: BaseException) -> str:
    """The message of the error that caused ``err``: MONAI's ``Compose`` wraps a transform's
    exception in "applying transform <...LoadRadiographd object at 0x...>", which says
    nothing about the file; the reader's own ``RadiographReadError`` (or the innermost
    cause) does."""
    chain, seen = [err], {id(err)}
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None:
        if id(cause) in seen:
            break
        seen.add(id(cause))
        chain.append(cause)
    for candidate in chain:
        if isinstance(candidate, RadiographReadError):
            return str(candidate)
    innermost = chain[-1]
    text = str(innermost).strip()
    return text if text else type(innermost).__name__


def sniff_format(path: Path) -> str | None:
    """'dicom', 'png', 'jpeg' or 'tiff' from the file's first bytes; None when unrecognised."""
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    if head[128:132] == b"DICM":
        return "dicom"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def _full_suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def read_radiograph(path: str | Path, max_megapixels: float | None = None) -> Radiograph:
    """Read one radiograph. Raises ``RadiographReadError`` naming the file on any failure.

    The decoder is chosen by the file's magic bytes (a PNG named ``.dcm`` is read as the PNG it
    is), then by suffix. The size the header declares is checked against ``max_megapixels``
    (default: the process-wide ``data.max_megapixels``) before any pixel is decoded.
    """
    path = Path(path)
    limit = float(max_megapixels if max_megapixels is not None else _max_megapixels)
    if not path.exists():
        raise RadiographReadError(f"{path}: file does not exist")
    if not path.is_file():
        raise RadiographReadError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise RadiographReadError(f"{path}: file is empty")
    kind = sniff_format(path)
    if kind == "dicom":
        return _read_dicom(path, limit)
    if kind in _ITK_IO:
        if path.suffix.lower() in DICOM_SUFFIXES:
            warnings.warn(
                f"{path}: this is a {kind.upper()} file, not DICOM; read as {kind.upper()}",
                UserWarning,
                stacklevel=2,
            )
        return _read_itk(path, limit, kind)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return _read_dicom(path, limit)  # a bare dataset without the Part 10 preamble
    suffix = _full_suffix(path)
    if suffix in {".png", ".jpg", ".jpeg", ".tif", ".tiff"}:
        raise RadiographReadError(
            f"{path}: not a {suffix.lstrip('.').upper()} file (its first bytes are not a "
            "PNG, JPEG, TIFF or DICOM signature); the file is corrupt or misnamed"
        )
    if suffix in ITK_SUFFIXES:
        return _read_itk(path, limit, None)
    raise RadiographReadError(
        f"{path}: unknown image format '{path.suffix}'; expected DICOM or one of "
        f"{', '.join(sorted(ITK_SUFFIXES))}"
    )


def _check_size(path: Path, rows: int, columns: int, limit: float) -> None:
    megapixels = rows * columns / 1e6
    if megapixels > limit:
        raise RadiographReadError(
            f"{path}: the file declares {rows} x {columns} pixels ({megapixels:.0f} MP), more "
            f"than the limit of {limit:g} MP (config key data.max_megapixels); downsample the "
            "image or raise the limit"
        )


# --------------------------------------------------------------------------- DICOM


def _dicom_age_years(value: Any) -> float | None:
    """DICOM AS values look like '067Y', '030M', '012W', '005D'."""
    if not value:
        return None
    text = str(value).strip().upper()
    units = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
    try:
        if text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except (ValueError, IndexError):
        return None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _dicom_spacing(ds: Any, path: Path) -> tuple[tuple[float, float] | None, str | None]:
    # Projection radiographs: Imager Pixel Spacing is measured at the detector and is what
    # CR/DX devices fill in; Pixel Spacing, when present, may be calibrated to the patient.
    # The order (imager first) matches what most hip-radiograph studies report.
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            warnings.warn(
                f"{path}: {keyword} {value!r} is not two numbers; ignored",
                MissingSpacingWarning,
                stacklevel=3,
            )
            continue
        if row > 0 and col > 0:
            return (row, col), keyword
        warnings.warn(
            f"{path}: {keyword} is {[row, col]} (zero or negative); ignored",
            MissingSpacingWarning,
            stacklevel=3,
        )
        return _no_dicom_spacing(ds, path, keyword)
    return _no_dicom_spacing(ds, path, None)


def _no_dicom_spacing(ds: Any, path: Path, bad: str | None):
    """After a zero/negative spacing, the other keyword may still hold a valid one."""
    if bad is not None:
        for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
            if keyword == bad or ds.get(keyword) is None:
                continue
            try:
                row, col = (float(v) for v in ds.get(keyword))
            except (TypeError, ValueError):
                continue
            if row > 0 and col > 0:
                return (row, col), keyword
        warnings.warn(
            f"{path}: {bad} is zero or negative and no other pixel spacing is valid; sizes "
            "in mm (ROI boxes, resampling) will use the configured default spacing",
            MissingSpacingWarning,
            stacklevel=3,
        )
        return None, None
    warnings.warn(
        f"{path}: neither ImagerPixelSpacing nor PixelSpacing is present; sizes in mm "
        "(ROI boxes, resampling) will use the configured default spacing",
        MissingSpacingWarning,
        stacklevel=3,
    )
    return None, None


def _nominal_output_range(ds: Any, voi: str | None) -> tuple[float, float]:
    """The value range that the last grey-scale step can produce (for MONOCHROME1 inversion).

    Inverting within this fixed range, not the image's own min/max, keeps the mapping the same
    for every image of a device, so grey values stay comparable between studies.
    """
    if voi == "lut":
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        bits_out = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits_out - 1)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    ends = sorted((lo * slope + intercept, hi * slope + intercept))
    return ends[0], ends[1]


def _decode_pixels(ds: Any, path: Path) -> np.ndarray:
    transfer_syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return ds.pixel_array
    except Exception as err:  # pydicom raises several types for missing decoders and bad data
        text = str(err)
        try:
            compressed = bool(transfer_syntax is not None and transfer_syntax.is_compressed)
        except (AttributeError, ValueError, TypeError):
            # A corrupt Transfer Syntax UID (several values, a stray NUL) is no known
            # compressed syntax: the file is reported as unreadable below.
            compressed = False
        if compressed and (
            "decod" in text.lower()
            or "plugin" in text.lower()
            or "dependencies" in text.lower()
            or "handler" in text.lower()
        ):
            hint = _DECODER_HINTS.get(str(transfer_syntax), _DEFAULT_DECODER_HINT)
            raise RadiographReadError(
                f"{path}: pixel data is compressed ({transfer_syntax.name}) and no installed "
                f"package can decode it; install: pip install {hint} "
                f"(or pip install 'osteo[dicom-codecs]')"
            ) from err
        raise RadiographReadError(
            f"{path}: pixel data could not be read (truncated or corrupt file?): {text}"
        ) from err


def _read_dicom(path: Path, limit: float = DEFAULT_MAX_MEGAPIXELS) -> Radiograph:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path, force=path.suffix.lower() in DICOM_SUFFIXES)
    except (
        InvalidDicomError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
    ) as err:
        raise RadiographReadError(f"{path}: not a readable DICOM file: {err}") from err
    except Exception as err:  # noqa: BLE001 - pydicom raises many types on hostile input
        raise RadiographReadError(f"{path}: not a readable DICOM file: {err!r}") from err
    if "PixelData" not in ds:
        raise RadiographReadError(f"{path}: DICOM file has no pixel data (PixelData missing)")

    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise RadiographReadError(
            f"{path}: colour image (SamplesPerPixel={samples}, PhotometricInterpretation="
            f"{photometric}); expected a greyscale MONOCHROME1/MONOCHROME2 radiograph"
        )
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError) as err:
        raise RadiographReadError(f"{path}: unreadable image size tags: {err}") from err
    _check_size(path, rows, columns * max(frames, 1), limit)
    if frames != 1:
        raise RadiographReadError(
            f"{path}: multi-frame image ({frames} frames); expected a single radiograph"
        )

    stored = _decode_pixels(ds, path)
    if stored.ndim != 2:
        raise RadiographReadError(f"{path}: pixel array has shape {stored.shape}; expected 2D")

    pixels = apply_modality_lut(stored, ds)
    voi: str | None = None
    if ds.get("VOILUTSequence"):
        voi = "lut"
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        voi = "window"
    if voi is not None:
        pixels = apply_voi_lut(pixels, ds)
    pixels = np.asarray(pixels, dtype=np.float32)
    if photometric == "MONOCHROME1":
        # MONOCHROME1 displays low values as white; invert so bone is always bright.
        lo, hi = _nominal_output_range(ds, voi)
        pixels = np.float32(lo + hi) - pixels
    if not np.isfinite(pixels).all():
        raise RadiographReadError(f"{path}: pixel data contains NaN or infinite values")

    spacing, spacing_source = _dicom_spacing(ds, path)
    tags = {
        "format": "dicom",
        "modality": str(ds.get("Modality", "")),
        "photometric_interpretation": photometric,
        "voi": voi,
        "spacing_source": spacing_source,
        "rows": int(stored.shape[0]),
        "columns": int(stored.shape[1]),
        "bits_stored": int(ds.get("BitsStored", 0) or 0),
        "transfer_syntax": str(getattr(ds.file_meta, "TransferSyntaxUID", "")),
        "manufacturer": str(ds.get("Manufacturer", "")),
        "body_part": str(ds.get("BodyPartExamined", "")),
        "view_position": str(ds.get("ViewPosition", "")),
        "study_date": str(ds.get("StudyDate", "")),
        "patient_age": _dicom_age_years(ds.get("PatientAge")),
        "patient_sex": (str(ds.get("PatientSex", "")).strip().upper() or None),
        "patient_weight": _float_or_none(ds.get("PatientWeight")),
    }
    return Radiograph(pixels=pixels, spacing=spacing, tags=tags, path=path)


# --------------------------------------------------------------------------- SimpleITK


def png_spacing(path: Path) -> tuple[tuple[float, float] | None, str | None]:
    """The pixel spacing a PNG states, in mm as (row, column), and which chunk said so.

    SimpleITK reads only ``sCAL`` and reports 1.0 for everything else, so osteo reads the
    chunks itself. The rule:

    - ``pHYs`` with unit "metre" (what Pillow's ``dpi=``, GIMP, OpenCV with a resolution and
      most image tools write) gives ``1000 / pixels_per_metre`` mm; it wins over ``sCAL``.
    - ``sCAL`` as ITK writes it holds the spacing in mm (ITK ignores the unit byte). ITK writes
      it on every PNG, with its default spacing 1 x 1 when none was set, so an ``sCAL`` of
      exactly 1 x 1 is indistinguishable from "not set" and counts as unknown; any other
      positive value was set deliberately and is trusted.
    - anything else (no chunk, ``pHYs`` as an aspect ratio only, zero values): unknown.
    """
    try:
        with path.open("rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return None, None
            scal: tuple[float, float] | None = None
            while True:
                header = fh.read(8)
                if len(header) < 8:
                    break
                length, kind = int.from_bytes(header[:4], "big"), header[4:]
                if kind in (b"IDAT", b"IEND") or length > 1 << 20:
                    break  # both chunks must come before the image data
                data = fh.read(length)
                fh.seek(4, 1)  # the CRC
                if kind == b"pHYs" and len(data) == 9:
                    ppm_x, ppm_y = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")
                    if data[8] == 1 and ppm_x > 0 and ppm_y > 0:
                        return (1000.0 / ppm_y, 1000.0 / ppm_x), "png pHYs"
                elif kind == b"sCAL" and len(data) >= 4:
                    parts = data[1:].split(b"\x00")
                    try:
                        sx, sy = float(parts[0]), float(parts[1])
                    except (ValueError, IndexError):
                        continue
                    if sx > 0 and sy > 0 and (sx, sy) != (1.0, 1.0):
                        scal = (sy, sx)
    except OSError:
        return None, None
    return (scal, "png sCAL") if scal is not None else (None, None)


def _read_itk(
    path: Path, limit: float = DEFAULT_MAX_MEGAPIXELS, kind: str | None = None
) -> Radiograph:
    import SimpleITK as sitk

    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        if kind in _ITK_IO:
            reader.SetImageIO(_ITK_IO[kind])  # the content decides, not the file name
        reader.ReadImageInformation()
        size = reader.GetSize()
        if len(size) >= 2:
            _check_size(path, int(size[1]), int(np.prod(size[2:], dtype=np.int64)) * size[0], limit)
        image = reader.Execute()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        raise RadiographReadError(f"{path}: not a readable image ({first})") from err

    if image.GetNumberOfComponentsPerPixel() != 1:
        raise RadiographReadError(
            f"{path}: colour image ({image.GetNumberOfComponentsPerPixel()} channels); "
            "expected a greyscale radiograph"
        )
    size = image.GetSize()
    if image.GetDimension() == 3:
        if size[2] != 1:
            raise RadiographReadError(
                f"{path}: 3D or multi-frame image of size {size}; expected a single 2D radiograph"
            )
        image = image[:, :, 0]
    elif image.GetDimension() != 2:
        raise RadiographReadError(f"{path}: {image.GetDimension()}D image; expected 2D")

    pixels = sitk.GetArrayFromImage(image).astype(np.float32)  # (rows, columns)
    if not np.isfinite(pixels).all():
        raise RadiographReadError(f"{path}: pixel data contains NaN or infinite values")
    sx, sy = (float(s) for s in image.GetSpacing()[:2])
    suffix = _full_suffix(path)
    spacing: tuple[float, float] | None = (sy, sx)
    spacing_source: str | None = "image header"
    # PNG/TIFF/JPEG store a resolution only optionally; ITK reports 1.0 when there is none.
    # A PNG's chunks are read here (see png_spacing); for TIFF/JPEG exactly (1, 1) is unknown.
    if kind == "png" or (kind is None and suffix == ".png"):
        spacing, spacing_source = png_spacing(path)
        unknown = spacing is None
        suffix = ".png"
    else:
        if kind in ("jpeg", "tiff"):
            suffix = ".jpg" if kind == "jpeg" else ".tif"
        unknown = suffix in {".tif", ".tiff", ".jpg", ".jpeg"} and (sx, sy) == (1.0, 1.0)
        if not unknown and not (sx > 0 and sy > 0):
            warnings.warn(
                f"{path}: the header's pixel spacing {(sx, sy)} is zero or negative; ignored",
                MissingSpacingWarning,
                stacklevel=2,
            )
            unknown = True
    if unknown:
        spacing, spacing_source = None, None
        warnings.warn(
            f"{path}: the file carries no pixel spacing; sizes in mm (ROI boxes, resampling) "
            "will use the configured default spacing",
            MissingSpacingWarning,
            stacklevel=2,
        )
    tags = {
        "format": suffix.lstrip("."),
        "spacing_source": spacing_source,
        "rows": int(pixels.shape[0]),
        "columns": int(pixels.shape[1]),
        "patient_age": None,
        "patient_sex": None,
        "patient_weight": None,
    }
    return Radiograph(pixels=pixels, spacing=spacing, tags=tags, path=path)
