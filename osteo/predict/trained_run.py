"""A trained run folder, loaded for prediction: model, standardisers, threshold, settings.

Reads ``checkpoints/model.ckpt`` (with ``weights_only=True``: a checkpoint holding anything but
tensors and plain values is refused, never unpickled), ``scalers.json`` (training-split
standardisers), ``metrics.json`` (the threshold validated on the val split) and
``inference.json`` (written by the classifier stage: crop and ROI settings, the segmentation
checkpoint, the radiomics parameter file). Every file is JSON or a weights-only checkpoint,
so loading a run folder cannot execute code.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from osteo.classification.inputs import Standardizer
from osteo.evaluation.recalibration import Recalibrator
from osteo.hashing import file_digest

__all__ = ["RunFolderError", "TrainedRun", "load_trained_run", "resolve_device"]

DEFAULT_THRESHOLD = 0.5


class RunFolderError(ValueError):
    """A run folder cannot be used for prediction; the message says what is missing."""


@dataclass
class TrainedRun:
    run_dir: Path
    module: torch.nn.Module  # OsteoporosisModule, eval mode, on ``device``
    card: dict  # inference.json
    scalers: dict[str, Standardizer]  # "clinical", "texture"
    threshold: float
    threshold_note: str
    device: torch.device
    segmentation_checkpoint: Path | None
    segmentation_problem: str | None  # why there is no usable segmentation checkpoint
    notes: list[str] = field(default_factory=list)
    # The recalibration fitted on val by the evaluation (identity when none): the threshold
    # in metrics.json is on recalibrated probabilities, so prediction must apply it too.
    recalibration: Recalibrator = field(default_factory=lambda: Recalibrator("none", {}))

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def head(self) -> str:
        return self.module.config.head

    @property
    def inputs(self) -> frozenset[str]:
        return self.module.inputs

    @property
    def has_tscore(self) -> bool:
        return self.module.has_aux_tscore

    def build_extractor(self):
        """The run's pyradiomics extractor, checked to give the features the model knows."""
        from osteo.radiomics.extractor import RadiomicsExtractor

        radiomics = self.card["radiomics"]
        path = Path(radiomics["params_path"])
        if path.is_file() and file_digest(path) == radiomics["params_digest"]:
            extractor = RadiomicsExtractor(path)
        else:
            # The repository's file moved or changed since training: use the recorded text.
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / "radiomics_params.yaml"
                copy.write_text(radiomics["params_text"], encoding="utf-8")
                extractor = RadiomicsExtractor(copy)
        expected = self.scalers["texture"].names
        if list(extractor.feature_names) != list(expected):
            raise RunFolderError(
                f"{self.run_dir}: the radiomics extractor gives {len(extractor.feature_names)} "
                f"features, the model was trained on {len(expected)} others (a different "
                "pyradiomics version?); predict in the environment the run was trained in"
            )
        return extractor


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RunFolderError(f"{path}: cannot be read as JSON ({err})") from None


def _load_module(path: Path):
    from osteo.classification.module import OsteoporosisModule

    try:
        return OsteoporosisModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RunFolderError(
            f"{path}: refused to load: the checkpoint holds objects other than tensors and "
            f"plain values, which weights_only loading does not unpickle ({first})"
        ) from None
    except (RuntimeError, KeyError, EOFError, OSError) as err:
        raise RunFolderError(f"{path}: not a readable osteo checkpoint ({err})") from None


def _threshold(metrics: dict) -> tuple[float, str]:
    val = metrics.get("val") or {}
    value = val.get("threshold")
    if value is None:
        return DEFAULT_THRESHOLD, "the run has no validated threshold: 0.5 used"
    return float(value), "validated on the run's val split"


def _segmentation(card: dict, override: Path | None) -> tuple[Path | None, str | None]:
    if override is not None:
        if not Path(override).is_file():
            return None, f"--segmentation-checkpoint {override} does not exist"
        return Path(override), None
    seg = card["segmentation"]
    if seg["checkpoint"] is None:
        return None, (
            "the run was trained on the manifest's masks (segmentation.masks=manifest) and has "
            "no segmentation model: pass --segmentation-checkpoint, or a manifest with "
            "mask_path and --masks-from-manifest"
        )
    path = Path(seg["checkpoint"])
    if not path.is_file():
        return None, (
            f"the run's segmentation checkpoint {path} no longer exists (cache cleared?): "
            "pass --segmentation-checkpoint"
        )
    if file_digest(path) != seg["checkpoint_digest"]:
        return None, (
            f"the segmentation checkpoint {path} changed since the run was trained: pass the "
            "original with --segmentation-checkpoint"
        )
    return path, None


def _version_notes(card: dict) -> list[str]:
    """Libraries whose version differs from training: predictions may drift slightly."""
    notes = []
    for name, trained in (card.get("versions") or {}).items():
        if name == "python":
            continue
        try:
            now = metadata.version(name)
        except metadata.PackageNotFoundError:
            now = "absent"
        if now != trained:
            notes.append(f"{name} {now} here, {trained} when the run was trained")
    return notes


def load_trained_run(
    run_dir: str | Path,
    device: str = "cpu",
    segmentation_checkpoint: str | Path | None = None,
) -> TrainedRun:
    """Load a run folder written by ``tools/fit.py``; raises ``RunFolderError``."""
    run_dir = Path(run_dir)
    needed = ["checkpoints/model.ckpt", "inference.json", "scalers.json", "metrics.json"]
    missing = [name for name in needed if not (run_dir / name).is_file()]
    if missing:
        hint = (
            " (inference.json is written by the classifier stage: rerun tools/fit.py with the "
            "run's config; every finished stage is reused)"
            if "inference.json" in missing
            else ""
        )
        raise RunFolderError(f"{run_dir}: not a finished run folder, missing {missing}{hint}")
    card = _read_json(run_dir / "inference.json")
    scalers = {
        k: Standardizer.from_state_dict(v) for k, v in _read_json(run_dir / "scalers.json").items()
    }
    metrics = _read_json(run_dir / "metrics.json")
    threshold, threshold_note = _threshold(metrics)
    try:
        recalibration = Recalibrator.from_record(
            (metrics.get("settings") or {}).get("recalibration")
        )
    except ValueError as err:
        raise RunFolderError(f"{run_dir / 'metrics.json'}: {err}") from None
    module = _load_module(run_dir / "checkpoints" / "model.ckpt")
    if sorted(module.inputs) != sorted(card["inputs"]):
        raise RunFolderError(
            f"{run_dir}: inference.json describes inputs {card['inputs']} but the checkpoint "
            f"uses {sorted(module.inputs)}; the folder mixes two trainings"
        )
    for key in ("clinical", "texture"):
        if key in module.inputs and key not in scalers:
            raise RunFolderError(f"{run_dir}/scalers.json has no {key!r} standardiser")
    torch_device = resolve_device(device)
    module = module.to(torch_device).eval()
    seg_path, seg_problem = _segmentation(
        card, Path(segmentation_checkpoint) if segmentation_checkpoint else None
    )
    return TrainedRun(
        run_dir=run_dir,
        module=module,
        card=card,
        scalers=scalers,
        threshold=threshold,
        threshold_note=threshold_note,
        device=torch_device,
        segmentation_checkpoint=seg_path,
        segmentation_problem=seg_problem,
        notes=_version_notes(card),
        recalibration=recalibration,
    )
