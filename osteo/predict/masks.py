"""Where a study's femur mask comes from: the run's U-Net, or the manifest's ``mask_path``.

Predicted masks go through ``osteo.segmentation.masks.predict_masks`` (the same transforms,
post-processing and cache as training), one study at a time so a bad file fails alone. Masks
from the manifest are for runs trained on reference masks (``segmentation.masks=manifest``)
or to check the classifier apart from the segmentation.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from osteo.data.assessability import mask_reasons
from osteo.data.masks import MaskFormatError, read_label_map
from osteo.predict.inputs import StudyInput

__all__ = ["FemurMask", "MaskError", "ManifestMasks", "PredictedMasks"]


class MaskError(ValueError):
    """No usable femur mask for a study; the message says why."""


@dataclass
class FemurMask:
    label_map: np.ndarray  # uint8, 0 background, 1 right femur, 2 left femur
    spacing: tuple[float, float]  # (row, column) mm, as stored with the mask
    flags: list[str]  # the gate's mask reasons, e.g. "right femur not found"


class ManifestMasks:
    """The manifest's ``mask_path`` of each study."""

    def mask_for(self, study: StudyInput) -> FemurMask:
        if study.mask_path is None:
            raise MaskError("--masks-from-manifest, but the manifest gives no mask_path")
        if not study.mask_path.is_file():
            raise MaskError("the manifest's mask_path does not exist")
        try:
            label_map, spacing = read_label_map(study.mask_path)
        except MaskFormatError as err:
            raise MaskError(str(err)) from None
        except RuntimeError as err:
            raise MaskError(f"the mask file cannot be read ({err})") from None
        return FemurMask(label_map, spacing, mask_reasons(label_map, spacing))


class PredictedMasks:
    """Masks from the run's segmentation checkpoint, cached by checkpoint and image bytes.

    ``cache_dir=None`` keeps the cache in a temporary folder removed by :meth:`close`.
    """

    def __init__(self, checkpoint: Path, device: str = "cpu", cache_dir: Path | None = None):
        from osteo.hashing import file_digest
        from osteo.segmentation.masks import MaskCache, load_segmentation_model

        self._tmp = (
            tempfile.TemporaryDirectory(prefix="osteo-masks-") if cache_dir is None else None
        )
        self.cache = MaskCache(Path(cache_dir) if cache_dir is not None else Path(self._tmp.name))
        self.device = device
        self.model = load_segmentation_model(checkpoint, device)
        self.checkpoint_digest = file_digest(checkpoint)

    def mask_for(self, study: StudyInput) -> FemurMask:
        from osteo.segmentation.masks import predict_masks

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
        try:
            label_map, spacing = read_label_map(result.mask_path)
        except MaskFormatError as err:
            raise MaskError(str(err)) from None
        return FemurMask(label_map, spacing, list(result.flags))

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
