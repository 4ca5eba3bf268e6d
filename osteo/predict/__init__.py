"""Prediction on new radiographs with a trained run folder, with explanations.

``tools/predict.py`` is the command line; the pieces, one job each:

- ``inputs``: files, folders and manifests -> ``StudyInput``
- ``trained_run``: a run folder -> model, standardisers, threshold, settings
- ``image_checks``: a pixel limit before decoding, quality flags after
- ``osteo.data.assessability`` (shared with the pipeline): the "not assessable" gate
- ``clinical``: age, sex, weight from options, manifest or DICOM header
- ``masks``: the femur mask from the run's U-Net or the manifest
- ``features``: hip crops, texture features, standardisation
- ``explain``: Grad-CAM per hip, input x gradient per feature
- ``overlay``: the explanation PNG
- ``predictor``: one study after another, failures kept per study
- ``writers``: JSON lines / CSV records without identifiers unless asked for
"""

from osteo.predict.image_checks import MAX_MEGAPIXELS, ImageTooLargeError
from osteo.predict.inputs import StudyInput, collect_inputs, load_prediction_manifest
from osteo.predict.masks import ManifestMasks, PredictedMasks
from osteo.predict.predictor import PredictionSettings, Predictor, StudyResult, public_id
from osteo.predict.trained_run import RunFolderError, TrainedRun, load_trained_run
from osteo.predict.writers import ResultWriter, result_record

__all__ = [
    "MAX_MEGAPIXELS",
    "ImageTooLargeError",
    "StudyInput",
    "collect_inputs",
    "load_prediction_manifest",
    "ManifestMasks",
    "PredictedMasks",
    "PredictionSettings",
    "Predictor",
    "StudyResult",
    "public_id",
    "RunFolderError",
    "TrainedRun",
    "load_trained_run",
    "ResultWriter",
    "result_record",
]
