"""HipDataModule: batches, train-only scaling, missing values, class balance; hip crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from osteo.classification.datamodule import HipDataModule
from osteo.classification.hips import extract_hip_crop, hip_crop_centre
from osteo.classification.inputs import Standardizer


def fake_split(n: int, offset: float, seed: int, texture_dim: int = 6, positives: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    label = torch.zeros(n)
    label[:positives] = 1
    return {
        "study_id": [f"S{seed}_{i}" for i in range(n)],
        "right": torch.randn(n, 1, 32, 32, generator=g).half(),
        "left": torch.randn(n, 1, 32, 32, generator=g).half(),
        "clinical": torch.stack(
            [
                torch.full((n,), 60.0 + offset),
                (torch.arange(n) % 2).float(),
                torch.full((n,), 70.0),
            ],
            1,
        )
        + torch.randn(n, 3, generator=g),
        "clinical_names": ["age", "sex_male", "weight"],
        "texture": torch.randn(n, texture_dim, generator=g) * 5 + offset,
        "texture_names": [f"f{i}" for i in range(texture_dim)],
        "label": label,
        "tscore": torch.where(label > 0, -3.0, -1.0),
    }


@pytest.fixture
def split_files(tmp_path):
    files = {}
    for i, (name, offset) in enumerate((("train", 0.0), ("val", 10.0), ("external_test", 20.0))):
        files[name] = tmp_path / f"{name}.pt"
        torch.save(fake_split(20, offset, i), files[name])
    return files


def test_batches_have_the_documented_keys(split_files):
    dm = HipDataModule(split_files, batch_size=8)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["right"].shape == (8, 1, 32, 32) and batch["left"].dtype == torch.float32
    assert batch["clinical"].shape == (8, 3) and batch["texture"].shape == (8, 6)
    assert batch["label"].shape == (8,) and len(batch["study_id"]) == 8
    assert [len(x) for x in dm.predict_dataloader()] == [3, 3]  # val, external_test


def test_head_without_deep_never_serves_images(split_files):
    dm = HipDataModule(split_files, inputs=("texture", "clinical"), batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert "right" not in batch and "left" not in batch


def test_scalers_fitted_on_train_only(split_files):
    dm = HipDataModule(split_files, batch_size=4)
    dm.setup("fit")
    train = dm.splits["train"]["texture"]
    val = dm.splits["val"]["texture"]
    assert train.mean().abs() < 1e-4  # standardised with its own statistics
    assert val.mean() > 1.0  # the val offset survives: val statistics were not used
    restored = HipDataModule(split_files)
    restored.load_state_dict(dm.state_dict())
    restored.setup("fit")
    assert torch.allclose(restored.splits["val"]["texture"], val)


def test_missing_clinical_is_an_error_by_default(split_files):
    data = torch.load(split_files["val"], weights_only=True)
    data["clinical"][2, 2] = float("nan")
    torch.save(data, split_files["val"])
    with pytest.raises(ValueError, match=r"val\.pt: 1 studies miss clinical values \(weight\)"):
        HipDataModule(split_files).setup("fit")
    dm = HipDataModule(split_files, clinical_missing="median")
    dm.setup("fit")
    assert torch.isfinite(dm.splits["val"]["clinical"]).all()
    assert dm.imputed["val"]["clinical"] == 1


def test_missing_texture_is_imputed_and_counted(split_files):
    data = torch.load(split_files["train"], weights_only=True)
    data["texture"][0, :] = float("nan")
    torch.save(data, split_files["train"])
    dm = HipDataModule(split_files)
    dm.setup("fit")
    assert torch.isfinite(dm.splits["train"]["texture"]).all()
    assert dm.imputed["train"]["texture"] == 1


def test_weighted_sampler_balances_classes(split_files):
    dm = HipDataModule(split_files, batch_size=20, class_balance="sampler")
    dm.setup("fit")
    labels = torch.cat([b["label"] for _ in range(20) for b in dm.train_dataloader()])
    assert 0.35 < labels.mean().item() < 0.65  # 15% positives in the data
    assert dm.pos_weight == pytest.approx(17 / 3)


def test_standardizer_constant_feature_stays_finite():
    values = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    scaler = Standardizer.fit(values, ["a", "b"])
    out = scaler(values)
    assert np.isfinite(out).all() and np.allclose(out[:, 1], 0.0)


def test_hip_crop_size_and_mirroring():
    pixels = np.zeros((200, 300), np.float32)
    pixels[50:150, 100:120] = 1.0  # a vertical bar left of the centre
    right = extract_hip_crop(pixels, (1.0, 1.0), (100.0, 120.0), 80.0, 40, mirror=False)
    left = extract_hip_crop(pixels, (1.0, 1.0), (100.0, 120.0), 80.0, 40, mirror=True)
    assert right.shape == (40, 40) and right.dtype == np.float32
    np.testing.assert_allclose(left, right[:, ::-1], atol=1e-5)
    assert abs(right.mean()) < 1e-4 and abs(right.std() - 1) < 1e-3
    # The same physical field whatever the spacing.
    fine = np.kron(pixels, np.ones((2, 2), np.float32))
    half = extract_hip_crop(fine, (0.5, 0.5), (200.0, 240.0), 80.0, 40, mirror=False)
    assert np.corrcoef(half.ravel(), right.ravel())[0, 1] > 0.95


def test_hip_crop_centre_from_boxes_or_mask():
    boxes = {"neck": (10, 10, 20, 20), "cortex": (50, 30, 60, 40)}
    assert hip_crop_centre(boxes, None, 1) == (35.0, 25.0)
    label_map = np.zeros((100, 100), np.uint8)
    label_map[20:90, 30:50] = 1
    centre = hip_crop_centre({}, label_map, 1)
    assert 20 <= centre[0] <= 55 and 30 <= centre[1] <= 50
    assert hip_crop_centre({}, label_map, 2) is None
