"""Predict one study after another: read, check, segment, place ROIs, build inputs, explain.

Every per-study problem (an unreadable or huge file, a missing clinical value the head needs)
becomes a failed ``StudyResult`` with the reason, and the batch goes on. A study the
assessability gate (``osteo.data.assessability``) rejects (not a pelvis radiograph, not two
plausible femurs, inputs far outside the training distribution) becomes a ``not_assessable``
result with its reasons and no probability. Problems that do not stop a prediction become
quality flags on it.
"""

from __future__ import annotations

import textwrap
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from osteo.classification.inputs import (
    InputError,
    crop_tensor,
    hip_crops,
    standardise,
    texture_features,
)
from osteo.data.assessability import (
    NOT_ASSESSABLE,
    feature_reasons,
    header_reasons,
    image_reasons,
    mask_reasons,
)
from osteo.data.io import MissingSpacingWarning, RadiographReadError, read_radiograph
from osteo.data.manifest import hash_identifier
from osteo.predict.clinical import ClinicalValues, resolve_clinical
from osteo.predict.explain import explain_prediction
from osteo.predict.image_checks import MAX_MEGAPIXELS, check_image_size, quality_flags
from osteo.predict.inputs import StudyInput
from osteo.predict.masks import MaskError
from osteo.predict.trained_run import TrainedRun
from osteo.roi.geometry import RoiResult, RoiSettings, place_rois

__all__ = ["PredictionSettings", "StudyResult", "Predictor", "public_id"]

# The spacing osteo's segmentation transforms assume for a file without one
# (osteo.data.transforms.LoadRadiographd).
ASSUMED_SPACING_MM = 0.15
EXPECTED_ERRORS = (RadiographReadError, InputError, MaskError, OSError)


def public_id(study: StudyInput, show_identifiers: bool) -> str:
    """The study's name in outputs: a one-way hash unless identifiers were asked for."""
    return study.study_id if show_identifiers else hash_identifier(study.study_id, "study")


@dataclass
class PredictionSettings:
    clinical_options: Mapping[str, object] = field(default_factory=dict)  # --age --sex --weight
    overlays_dir: Path | None = None
    gradcam: bool = True
    top_k: int = 10
    max_megapixels: float = MAX_MEGAPIXELS
    show_identifiers: bool = False


@dataclass
class ModelInputs:
    """One study's batch for the model, and what the explanation needs to name its parts."""

    batch: dict[str, torch.Tensor] = field(default_factory=dict)  # right, left, clinical, texture
    names: dict[str, list[str]] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict)  # before standardisation
    imputed: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, values: np.ndarray, scaler) -> list[str]:
        """Standardise ``values`` into the batch; returns the names of imputed features."""
        standardised, missing = standardise(scaler, values)
        self.batch[key] = torch.from_numpy(standardised)[None]
        self.names[key] = list(scaler.names)
        self.raw[key] = np.asarray(values, dtype=np.float32)
        self.imputed[key] = missing
        return missing


@dataclass
class StudyResult:
    study: StudyInput
    status: str  # "ok", "not_assessable" (see ``reasons``) or "failed" (see ``error``)
    seconds: float = 0.0
    error: str | None = None
    probability: float | None = None
    threshold: float | None = None
    positive: bool | None = None
    tscore: float | None = None
    clinical: ClinicalValues | None = None
    rois: RoiResult | None = None
    spacing: tuple[float, float] | None = None
    spacing_source: str | None = None
    image_size: tuple[int, int] | None = None
    flags: list[str] = field(default_factory=list)
    explanation: dict | None = None
    overlay: Path | None = None
    reasons: list[str] = field(default_factory=list)  # why not assessable (the gate's words)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def assessable(self) -> bool:
        return self.status != NOT_ASSESSABLE


class Predictor:
    """A loaded run plus a mask source (None for heads that use no images)."""

    def __init__(self, run: TrainedRun, masks=None, settings: PredictionSettings | None = None):
        self.run = run
        self.masks = masks
        self.settings = settings or PredictionSettings()
        self.needs_masks = bool({"deep", "texture"} & run.inputs)
        if self.needs_masks and masks is None:
            raise ValueError(f"head {run.head!r} uses images: a mask source is needed")
        card = run.card
        roi = {k: tuple(v) if isinstance(v, list) else v for k, v in card["roi"].items()}
        self.roi_settings = RoiSettings(**roi)
        self.extractor = run.build_extractor() if "texture" in run.inputs else None

    # ------------------------------------------------------------------ batches

    def predict_many(self, studies: Iterable[StudyInput]) -> Iterator[StudyResult]:
        for study in studies:
            yield self.predict(study)

    def predict(self, study: StudyInput) -> StudyResult:
        start = time.perf_counter()
        try:
            result = self._predict(study)
        except EXPECTED_ERRORS as err:
            result = StudyResult(study, "failed", error=str(err))
        except Exception as err:  # noqa: BLE001 - one study's failure must not end the batch
            result = StudyResult(study, "failed", error=f"{type(err).__name__}: {err}")
        result.seconds = time.perf_counter() - start
        return result

    # ------------------------------------------------------------------ one study

    def model_inputs(self, study: StudyInput) -> ModelInputs:
        """The batch ``predict`` gives the model for ``study`` (built by
        ``osteo.classification.inputs``, as training built its inputs)."""
        return self._prepare(study)[2]

    def _predict(self, study: StudyInput) -> StudyResult:
        run, settings = self.run, self.settings
        radiograph, result, inputs, mask, crops = self._prepare(study)
        # Without a spacing in the file, sizes in mm follow the mask's (the U-Net writes its
        # masks at the spacing it assumed).
        used = mask.spacing[0] if mask is not None else ASSUMED_SPACING_MM
        result.flags[:0] = quality_flags(radiograph, used)
        if result.reasons:
            # No probability, decision or explanation: the model's answer would mean nothing.
            result.status = NOT_ASSESSABLE
            if settings.overlays_dir is not None:
                result.overlay = self._overlay(result, radiograph.pixels, mask, None, None)
            return result

        batch = {k: v.to(run.device) for k, v in inputs.batch.items()}
        explanation = explain_prediction(
            run.module, batch, inputs.names, inputs.raw, inputs.imputed, settings.gradcam
        )
        result.probability = float(run.recalibration(explanation.probability))
        result.threshold = run.threshold
        result.positive = result.probability >= run.threshold
        result.tscore = explanation.tscore if run.has_tscore else None
        result.explanation = explanation.summary(settings.top_k)
        if settings.overlays_dir is not None:
            result.overlay = self._overlay(result, radiograph.pixels, mask, crops, explanation)
        return result

    def _prepare(self, study: StudyInput):
        """Read and check the radiograph, build the model's inputs; returns
        (radiograph, result so far, inputs, mask or None, crops or None).

        The gate's reasons go to ``result.reasons``; the first check that finds any ends the
        preparation there (the inputs are then incomplete and must not reach the model)."""
        check_image_size(study.image_path, self.settings.max_megapixels)
        with warnings.catch_warnings():
            # A quality flag says so; the warning's own text would carry the file path.
            warnings.simplefilter("ignore", MissingSpacingWarning)
            radiograph = read_radiograph(study.image_path)
        result = StudyResult(
            study,
            "ok",
            spacing=radiograph.spacing,
            spacing_source=radiograph.tags.get("spacing_source"),
            image_size=radiograph.shape,
        )
        inputs = ModelInputs()
        result.reasons += header_reasons(radiograph.tags)
        result.reasons += image_reasons(radiograph.pixels, radiograph.spacing)
        if result.reasons:
            return radiograph, result, inputs, None, None
        if "clinical" in self.run.inputs:
            self._clinical_inputs(study, radiograph, result, inputs)
        mask = crops = None
        if self.needs_masks:
            mask, crops = self._image_inputs(study, radiograph, result, inputs)
        return radiograph, result, inputs, mask, crops

    def _clinical_inputs(self, study, radiograph, result: StudyResult, inputs) -> None:
        clinical = resolve_clinical(self.settings.clinical_options, study.clinical, radiograph.tags)
        result.clinical = clinical
        result.flags += clinical.notes
        if clinical.missing and self.run.card["clinical_missing"] == "error":
            raise InputError(clinical.missing_message(self.run.head))
        for name in inputs.add("clinical", clinical.vector(), self.run.scalers["clinical"]):
            result.flags.append(f"clinical: {name} missing, imputed with the training median")

    def _image_inputs(self, study, radiograph, result: StudyResult, inputs):
        """Mask, ROI boxes, hip crops and texture features; returns (mask, crops)."""
        run = self.run
        mask = self.masks.mask_for(study)
        if mask.label_map.shape != radiograph.shape:
            raise InputError(
                f"the femur mask is {mask.label_map.shape[0]} x {mask.label_map.shape[1]} "
                f"pixels, the radiograph {radiograph.shape[0]} x {radiograph.shape[1]}"
            )
        # Training left such studies out (the segmentation stage applies the same check).
        result.reasons += mask_reasons(mask.label_map, mask.spacing)
        if result.reasons:
            if radiograph.spacing is None:
                # The sizes in mm rest on the spacing the U-Net assumed: say so beside them.
                result.reasons.append(
                    f"the file has no pixel spacing: sizes in mm assume {mask.spacing[0]:g} mm "
                    "per pixel; if this is a pelvis film, give the file its spacing"
                )
            return mask, None
        result.rois = place_rois(mask.label_map, mask.spacing, self.roi_settings)
        result.flags += [f"ROI {flag}" for flag in result.rois.flags]
        crops = None
        if "deep" in run.inputs:
            crops = hip_crops(
                radiograph.pixels,
                radiograph.spacing or mask.spacing,
                mask.label_map,
                result.rois,
                run.card["crop_mm"],
                run.card["crop_size"],
            )
            for side, crop in crops.items():
                inputs.batch[side] = crop_tensor(crop.pixels)[None, None]
        if "texture" in run.inputs:
            values, failures = texture_features(
                self.extractor, radiograph.pixels, result.rois, radiograph.spacing
            )
            inputs.add("texture", values, run.scalers["texture"])
            result.reasons += feature_reasons(
                inputs.batch["texture"].numpy()[0], inputs.names["texture"]
            )
            for slot, reason in failures.items():
                result.flags.append(
                    f"texture: {slot} ROI failed ({reason}); its features take the training median"
                )
        return mask, crops

    def _overlay(self, result: StudyResult, pixels, mask, crops, explanation) -> Path:
        from osteo.predict.overlay import save_prediction_overlay

        name = public_id(result.study, self.settings.show_identifiers)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        if not result.assessable:
            title = "\n".join(
                textwrap.wrap(f"NOT ASSESSABLE (no prediction): {'; '.join(result.reasons)}", 110)[
                    :4
                ]
                + [f"study {name}   run {self.run.name}"]
            )
        else:
            decision = "osteoporosis" if result.positive else "no osteoporosis"
            title = (
                f"{decision}: P(osteoporosis) = {result.probability:.2f} "
                f"(threshold {result.threshold:.2f})   study {name}   run {self.run.name}"
            )
        return save_prediction_overlay(
            self.settings.overlays_dir / f"{safe}.png",
            pixels,
            mask.label_map if mask is not None else None,
            result.rois,
            crops,
            explanation.cams if explanation is not None else None,
            explanation.cam_share if explanation is not None else None,
            title,
            flags=result.flags,
        )
