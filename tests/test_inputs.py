"""Training and prediction build a study's model inputs the same way, bit for bit.

The training path: the split tensor files the classifier stage cached for the shared tiny run
(``cache/datasets/<key>/<split>.pt``), standardised by ``HipDataModule`` with the run's
``scalers.json``. The prediction path: ``Predictor.model_inputs`` on the same study, from its
image, its manifest mask and its manifest clinical values. Both go through
``osteo.classification.inputs``; a drift between them would let a prediction be made on inputs
the model never saw in training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from osteo.classification.datamodule import HipDataModule
from osteo.classification.inputs import (
    CROP_DTYPE,
    Standardizer,
    clinical_vector,
    crop_tensor,
    standardise,
)
from osteo.predict import StudyInput
from osteo.predict.batch import build_predictor


def split_files(cache_dir: Path) -> dict[str, Path]:
    (folder,) = (cache_dir / "datasets").iterdir()  # the shared run made one dataset
    return {path.stem: path for path in folder.glob("*.pt")}


@pytest.fixture(scope="module")
def training_data(tiny_run) -> HipDataModule:
    module = HipDataModule(
        split_files(tiny_run.cache_dir),
        inputs=("deep", "texture", "clinical"),
        clinical_missing="median",
    )
    # The standardisers fitted once in training, as prediction loads them.
    module.load_state_dict(json.loads((tiny_run.run_dir / "scalers.json").read_text()))
    module.setup("predict")
    return module


@pytest.mark.slow
@pytest.mark.parametrize("split", ["val", "internal_test", "external_test"])
def test_training_and_prediction_inputs_are_identical(tiny_run, training_data, split):
    predictor = build_predictor(tiny_run.run_dir, masks_from_manifest=True)
    manifest = pd.read_csv(tiny_run.manifest, dtype={"study_id": str})
    rows = manifest.set_index("study_id")
    dataset = training_data.dataset(split)
    for index in range(min(2, len(dataset))):
        item = dataset[index]
        row = rows.loc[item["study_id"]]
        study = StudyInput(
            study_id=item["study_id"],
            image_path=tiny_run.manifest.parent / row["image_path"],
            mask_path=tiny_run.manifest.parent / row["mask_path"],
            clinical={"age": float(row["age"]), "sex": row["sex"], "weight": float(row["weight"])},
            origin="manifest",
        )
        batch = predictor.model_inputs(study).batch
        assert set(batch) == {"right", "left", "clinical", "texture"}
        for key in ("right", "left", "clinical", "texture"):
            trained, predicted = item[key], batch[key][0]
            assert trained.dtype == predicted.dtype == torch.float32, key
            assert trained.shape == predicted.shape, key
            # Bit for bit: equal values, NaN nowhere (a failed ROI takes the median).
            assert torch.equal(trained, predicted), (
                f"{split} study #{index} {key}: max difference "
                f"{(trained - predicted).abs().max().item()}"
            )


def test_clinical_vector_treats_none_and_nan_alike():
    from_manifest = clinical_vector(71.0, "F", np.nan)
    from_options = clinical_vector(71, "F", None)
    assert from_manifest.dtype == np.float32
    np.testing.assert_array_equal(from_manifest, from_options)
    np.testing.assert_array_equal(clinical_vector(None, "M", 80)[1:], [1.0, 80.0])
    assert np.isnan(clinical_vector(None, "X", 80)[:2]).all()  # unknown sex code is missing


def test_crop_tensor_rounds_as_the_training_cache_stores():
    crop = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    stored = torch.empty(8, 8, dtype=CROP_DTYPE)
    stored[:] = torch.from_numpy(crop)  # how build_split_tensors fills its tensor
    assert torch.equal(crop_tensor(crop), stored.float())
    assert not torch.equal(crop_tensor(crop), torch.from_numpy(crop))  # rounding happened


def test_standardise_matches_the_datamodule_scaling():
    values = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]], dtype=np.float32)
    scaler = Standardizer.fit(values, ["a", "b"])
    scaled, imputed = standardise(scaler, values[1])
    assert imputed == ["b"]
    np.testing.assert_array_equal(scaled, scaler(np.array([3.0, 4.0], dtype=np.float32)))
