"""Build DICOM files the way CR and DX devices write them (not only the way osteo writes them).

Real devices differ in ways the reader must handle: implicit VR little endian (common on CR
readers), MONOCHROME1 (most CR plates), 10-15 bits stored in 16 allocated, a modality
rescale, a window or a VOI LUT sequence (DX "for presentation"), spacing in Imager Pixel
Spacing only, compressed transfer syntaxes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"


def phantom(rows: int = 64, cols: int = 80, bits: int = 12) -> np.ndarray:
    """A bright 'bone' disc on a darker background, as stored values (bone = high attenuation)."""
    yy, xx = np.mgrid[:rows, :cols]
    disc = (yy - rows / 2) ** 2 + (xx - cols / 2) ** 2 < (min(rows, cols) / 4) ** 2
    img = np.full((rows, cols), 0.25 * (2**bits - 1))
    img[disc] = 0.8 * (2**bits - 1)
    return img.astype(np.uint16)


def base_dataset(sop_class: str, pixels: np.ndarray, bits: int, photometric: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "DOE^JANE"  # the reader must never copy this
    ds.PatientID = "123456"
    ds.PatientAge = "067Y"
    ds.PatientSex = "F"
    ds.PatientWeight = "61.5"
    ds.StudyDate = "20150312"
    ds.BodyPartExamined = "PELVIS"
    ds.ViewPosition = "AP"
    ds.Manufacturer = "ACME"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def write_cr(
    path: Path,
    *,
    monochrome1: bool = True,
    implicit: bool = True,
    spacing: tuple[float, float] | None = (0.15, 0.15),
    pixel_spacing=None,
    window=(2048.0, 4096.0),
    rescale=(1.0, 0.0),
    bits: int = 12,
) -> np.ndarray:
    """A computed-radiography file: MONOCHROME1, implicit VR, Imager Pixel Spacing only."""
    stored = phantom(bits=bits)
    if monochrome1:
        stored = (2**bits - 1 - stored).astype(np.uint16)  # the plate stores bone as dark
    ds = base_dataset(
        CR_IMAGE_STORAGE, stored, bits, "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    )
    ds.Modality = "CR"
    if spacing is not None:
        ds.ImagerPixelSpacing = [f"{spacing[0]:g}", f"{spacing[1]:g}"]
    if pixel_spacing is not None:
        ds.PixelSpacing = [f"{pixel_spacing[0]:g}", f"{pixel_spacing[1]:g}"]
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = (f"{rescale[0]:g}", f"{rescale[1]:g}")
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = (f"{window[0]:g}", f"{window[1]:g}")
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return stored


def write_dx_voi_lut(path: Path, bits: int = 14) -> np.ndarray:
    """A DX 'for presentation' file whose grey scale comes from a VOI LUT sequence."""
    stored = phantom(bits=bits)
    ds = base_dataset(DX_PRESENTATION_STORAGE, stored, bits, "MONOCHROME2")
    ds.Modality = "DX"
    ds.PixelSpacing = ["0.139", "0.139"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    lut = Dataset()
    n = 2**bits
    lut.LUTDescriptor = [n, 0, 12]
    # A gamma curve, as DX consoles ship, mapping 14 stored bits to 12 output bits.
    lut.LUTData = (np.linspace(0, 1, n) ** 0.7 * 4095).astype(np.uint16).tolist()
    lut["LUTData"].VR = "US"
    ds.VOILUTSequence = Sequence([lut])
    ds.save_as(path, enforce_file_format=True)
    return stored


def write_rle(path: Path) -> np.ndarray:
    stored = phantom()
    ds = base_dataset(DX_PRESENTATION_STORAGE, stored, 12, "MONOCHROME2")
    ds.Modality = "DX"
    ds.ImagerPixelSpacing = ["0.2", "0.2"]
    ds.compress(RLELossless)  # pydicom encodes RLE natively
    ds.save_as(path, enforce_file_format=True)
    return stored


def write_jpeg2000_without_decoder(path: Path) -> None:
    """A JPEG 2000 file: pydicom needs pylibjpeg-openjpeg (or pillow with openjpeg) for it."""
    from pydicom.encaps import encapsulate

    stored = phantom()
    ds = base_dataset(DX_PRESENTATION_STORAGE, stored, 12, "MONOCHROME2")
    ds.Modality = "DX"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    # A J2K codestream header followed by junk: enough for pydicom to pick a decoder.
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


def write_colour(path: Path) -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    ds = base_dataset(CR_IMAGE_STORAGE, np.zeros((16, 16)), 8, "RGB")
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = rgb.tobytes()
    ds.Modality = "CR"
    ds.save_as(path, enforce_file_format=True)


def write_multiframe(path: Path) -> None:
    frames = np.zeros((3, 16, 16), dtype=np.uint16)
    ds = base_dataset(DX_PRESENTATION_STORAGE, frames[0], 12, "MONOCHROME2")
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    ds.Modality = "DX"
    ds.save_as(path, enforce_file_format=True)
