"""Where a study's femur mask comes from: the run's U-Net, or the manifest's ``mask_path``.

Predicted masks go through ``osteo.segmentation.predict.predict_masks`` (the same transforms,
post-processing and cache as training), one study at a time so a bad file fails alone. Masks
from the manifest are for runs trained on reference masks (``segmentation.masks=manifest``)
or to check the classifier apart from the segmentation.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from osteo.predict.inputs import StudyInput

__all__ = ["FemurMask", "MaskError", "ManifestMasks", "PredictedMasks", "read_label_map"]


class MaskError(ValueError):
    """No usable femur mask for a study; the message says why."""


@dataclass
class FemurMask:
    label_map: np.ndarray  # uint8, 0 background, 1 right femur, 2 left femur
    spacing: tuple[float, float]  # (row, column) mm, as stored with the mask
    flags: list[str]  # e.g. "right femur not found"


def read_label_map(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """A label map and its (row, column) spacing; refuses values other than 0, 1, 2."""
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array = array[0] if array.ndim == 3 and array.shape[0] == 1 else array
    if array.ndim != 2:
        raise MaskError(f"the mask is not a 2D label map (shape {array.shape})")
    labels = set(np.unique(array).tolist())
    if not labels <= {0, 1, 2}:
        raise MaskError(f"the mask has labels {sorted(labels)}; expected only 0, 1 and 2")
    sx, sy = image.GetSpacing()[:2]
    return array.astype(np.uint8), (float(sy), float(sx))


def _missing_femurs(label_map: np.ndarray) -> list[str]:
    return [
        f"{side} femur not found"
        for side, label in (("right", 1), ("left", 2))
        if not (label_map == label).any()
    ]


class ManifestMasks:
    """The manifest's ``mask_path`` of each study."""

    def mask_for(self, study: StudyInput) -> FemurMask:
        if study.mask_path is None:
            raise MaskError("--masks-from-manifest, but the manifest gives no mask_path")
        if not study.mask_path.is_file():
            raise MaskError("the manifest's mask_path does not exist")
        try:
            label_map, spacing = read_label_map(study.mask_path)
        except RuntimeError as err:
            raise MaskError(f"the mask file cannot be read ({err})") from None
        return FemurMask(label_map, spacing, _missing_femurs(label_map))


class PredictedMasks:
    """Masks from the run's segmentation checkpoint, cached by checkpoint and image bytes.

    ``cache_dir=None`` keeps the cache in a temporary folder removed by :meth:`close`.
    """

    def __init__(self, checkpoint: Path, device: str = "cpu", cache_dir: Path | None = None):
        from osteo.hashing import file_digest
        from osteo.segmentation.predict import MaskCache, load_segmentation_model

        self._tmp = (
            tempfile.TemporaryDirectory(prefix="osteo-masks-") if cache_dir is None else None
        )
        self.cache = MaskCache(Path(cache_dir) if cache_dir is not None else Path(self._tmp.name))
        self.device = device
        self.model = load_segmentation_model(checkpoint, device)
        self.checkpoint_digest = file_digest(checkpoint)

    def mask_for(self, study: StudyInput) -> FemurMask:
        from osteo.segmentation.predict import predict_masks

        (result,) = predict_masks(
            self.model,
            [(study.study_id, str(study.image_path))],
            self.cache,
            self.checkpoint_digest,
            batch_size=1,
            device=self.device,
            progress=False,
        )
        if result.mask_path is None:
            raise MaskError(f"segmentation failed: {result.error}")
        label_map, spacing = read_label_map(result.mask_path)
        return FemurMask(label_map, spacing, list(result.flags))

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
