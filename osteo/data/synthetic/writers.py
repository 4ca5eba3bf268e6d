"""Write a rendered study to disk: the radiograph as DICOM (CR/DX) or 16-bit PNG, the mask as PNG.

DICOM files carry the tags a CR reader or DX console writes for an AP pelvis, with synthetic,
non-identifying patient data (the patient id doubles as the name). UIDs are derived from the
seed and study id, so a cohort is byte-for-byte reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .presets import SiteAcquisition

__all__ = ["write_dicom", "write_mask_png", "write_png"]

_UID_ROOT = "osteo-synthetic"


def _uid(seed: int, study_id: str, what: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[_UID_ROOT, str(seed), study_id, what])


def _dicom_age(age_years: float) -> str:
    return f"{int(np.floor(age_years)):03d}Y"


def _acquisition_time(seed: int) -> str:
    seconds = 8 * 3600 + int(seed % (9 * 3600))  # office hours
    return f"{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}"


def write_dicom(
    path: Path,
    stored: np.ndarray,
    site: SiteAcquisition,
    study: Mapping,
    seed: int,
) -> None:
    """A Part 10 file: CR Image Storage at site A, DX For Presentation at site B."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    study_id = str(study["study_id"])
    sop_instance = _uid(seed, study_id, "sop")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = site.sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = site.sop_class_uid
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = _uid(seed, study_id, "study")
    ds.SeriesInstanceUID = _uid(seed, study_id, "series")
    date = str(study["study_date"]).replace("-", "")
    time = _acquisition_time(int(study["render_seed"]))
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    ds.AccessionNumber = f"A{study_id[1:]}"
    ds.Modality = site.modality
    ds.Manufacturer = site.manufacturer
    ds.ManufacturerModelName = site.model_name
    ds.InstitutionName = f"Synthetic Hospital {site.name}"
    ds.StationName = f"SYN{site.name}01"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "PELVIS AP"
    ds.SeriesDescription = "AP PELVIS"
    ds.StudyID = study_id
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1

    patient_id = str(study["patient_id"])
    ds.PatientName = patient_id  # synthetic: the id is the only "name" there is
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = str(study["sex"])
    ds.PatientAge = _dicom_age(float(study["age"]))
    ds.PatientWeight = f"{float(study['weight']):.1f}"

    ds.BodyPartExamined = "PELVIS"
    ds.ViewPosition = "AP"
    ds.PatientOrientation = ["L", "F"]  # columns run to the patient's left, rows to the feet
    ds.KVP = "75"
    ds.DistanceSourceToDetector = "1150"
    spacing = [f"{site.spacing_mm:.4g}", f"{site.spacing_mm:.4g}"]
    ds.ImagerPixelSpacing = spacing
    if site.write_pixel_spacing:
        ds.PixelSpacing = spacing
    if site.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
        ds.ImageLaterality = "B"  # both hips
        ds.PixelIntensityRelationship = "LOG"
        # +1: lower stored values = less beam reaching the detector (bone, with MONOCHROME1).
        ds.PixelIntensityRelationshipSign = 1 if site.photometric == "MONOCHROME1" else -1

    top = 2**site.bits_stored - 1
    ds.Rows, ds.Columns = (int(n) for n in stored.shape)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = site.photometric
    ds.PresentationLUTShape = "INVERSE" if site.photometric == "MONOCHROME1" else "IDENTITY"
    ds.BitsAllocated = 16
    ds.BitsStored = site.bits_stored
    ds.HighBit = site.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.WindowCenter = f"{(top + 1) / 2:g}"
    ds.WindowWidth = f"{top + 1:g}"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_png(path: Path, stored: np.ndarray, site: SiteAcquisition) -> None:
    """16-bit greyscale PNG, bone bright (MONOCHROME1 data are inverted first).

    Written by Pillow with the spacing as a ``pHYs`` chunk (dots per inch), as image tools
    export radiographs; ITK's ``sCAL`` cannot say 1.0 mm (its default, read as "unknown")."""
    from PIL import Image

    pixels = stored
    if site.photometric == "MONOCHROME1":
        pixels = (2**site.bits_stored - 1 - stored.astype(np.int32)).astype(np.uint16)
    dpi = 25.4 / site.spacing_mm
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint16)).save(path, dpi=(dpi, dpi))


def write_mask_png(path: Path, mask: np.ndarray, spacing_mm: float) -> None:
    """The label map as 8-bit PNG, with the pixel spacing (PNG pHYs) so that ROI sizes in mm
    can be placed from the mask alone."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.uint8))
    image.SetSpacing((spacing_mm, spacing_mm))
    sitk.WriteImage(image, str(path))
