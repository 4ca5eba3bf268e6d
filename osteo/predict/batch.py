"""A whole prediction batch: pick the mask source, run every study, keep the failures.

Used by ``tools/predict.py``; also the simplest way to predict from Python::

    predictor = build_predictor("runs/fusion_all", masks_from_manifest=False)
    with ResultWriter(Path("out.jsonl"), "jsonl") as writer:
        summary = predict_batch(predictor, collect_inputs(["scans/"]), writer)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from osteo.predict.inputs import StudyInput
from osteo.predict.masks import ManifestMasks, PredictedMasks
from osteo.predict.predictor import PredictionSettings, Predictor
from osteo.predict.trained_run import RunFolderError, load_trained_run
from osteo.predict.writers import ResultWriter

__all__ = ["BatchSummary", "build_predictor", "predict_batch"]


@dataclass
class BatchSummary:
    studies: int = 0
    predicted: int = 0
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (#, study, error)
    # (#, study, reasons): studies the assessability gate rejected, with no prediction
    not_assessable: list[tuple[int, str, list[str]]] = field(default_factory=list)
    seconds: float = 0.0
    study_seconds: list[float] = field(default_factory=list)  # per predicted study

    @property
    def seconds_per_study(self) -> float | None:
        return sum(self.study_seconds) / len(self.study_seconds) if self.study_seconds else None


def build_predictor(
    run_dir: str | Path,
    device: str = "cpu",
    masks_from_manifest: bool = False,
    segmentation_checkpoint: str | Path | None = None,
    cache_dir: str | Path | None = None,
    settings: PredictionSettings | None = None,
) -> Predictor:
    """Load the run and its mask source; raises ``RunFolderError`` with what to do."""
    run = load_trained_run(run_dir, device, segmentation_checkpoint)
    masks = None
    if {"deep", "texture"} & run.inputs:
        if masks_from_manifest:
            masks = ManifestMasks()
        elif run.segmentation_checkpoint is None:
            raise RunFolderError(f"{run.run_dir}: {run.segmentation_problem}")
        else:
            masks = PredictedMasks(
                run.segmentation_checkpoint,
                str(run.device),
                Path(cache_dir) if cache_dir is not None else None,
            )
    return Predictor(run, masks, settings)


def predict_batch(
    predictor: Predictor,
    studies: Sequence[StudyInput],
    writer: ResultWriter,
    progress: bool = True,
) -> BatchSummary:
    """Predict every study in order, writing each record at once; never stops on a study."""
    summary = BatchSummary(studies=len(studies))
    start = time.perf_counter()
    bar = tqdm(total=len(studies), desc="predict", unit="study", disable=not progress)
    try:
        for index, result in enumerate(predictor.predict_many(studies), start=1):
            record = writer.write(result)
            if result.ok:
                summary.predicted += 1
                summary.study_seconds.append(result.seconds)
            elif not result.assessable:
                summary.not_assessable.append((index, record["study"], record["reasons"]))
            else:
                summary.failures.append((index, record["study"], record["error"]))
            bar.update(1)
    finally:
        bar.close()
        if predictor.masks is not None and hasattr(predictor.masks, "close"):
            predictor.masks.close()
    summary.seconds = time.perf_counter() - start
    return summary
