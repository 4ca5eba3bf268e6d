"""FemurSegmentationModule, SegmentationDataModule and cached mask prediction."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from femur_phantom import pelvis_label_map

from osteo.segmentation import FemurSegmentationModule, list_segmentation_networks
from osteo.segmentation.datamodule import SegmentationDataModule
from osteo.segmentation.masks import (
    MaskCache,
    load_segmentation_model,
    postprocess_mask,
    predict_masks,
)
from osteo.segmentation.networks import create_segmentation_network

SPACING = 1.6  # mm per pixel of the toy radiographs


def write_study(folder, index: int, rng) -> dict:
    label_map = pelvis_label_map(shape=(200, 360), spacing=SPACING * 1.0, head=(70.0, 140.0))
    shift = int(rng.integers(-6, 7))
    label_map = np.roll(label_map, shift, axis=0)
    image = 0.3 + 0.5 * (label_map > 0) + 0.08 * rng.standard_normal(label_map.shape)
    paths = {}
    for name, array, dtype in (("image", image * 1000, np.uint16), ("mask", label_map, np.uint8)):
        itk = sitk.GetImageFromArray(array.astype(dtype))
        itk.SetSpacing((SPACING, SPACING))
        paths[name] = folder / f"{name}_{index}.png"
        sitk.WriteImage(itk, str(paths[name]))
    return {
        "study_id": f"S{index}",
        "image_path": str(paths["image"]),
        "mask_path": str(paths["mask"]),
    }


@pytest.fixture(scope="module")
def toy_rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg")
    rng = np.random.default_rng(0)
    return [write_study(folder, i, rng) for i in range(6)]


@pytest.mark.parametrize("name", list_segmentation_networks())
def test_every_network_maps_image_to_three_classes(name):
    net = create_segmentation_network(name, channels=(8, 16, 32, 64), num_res_units=1)
    out = net(torch.zeros(1, 1, 64, 64))
    assert out.shape == (1, 3, 64, 64)


def test_unknown_network_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown segmentation network 'vnet'.*unet"):
        create_segmentation_network("vnet")


def test_datamodule_batches(toy_rows):
    dm = SegmentationDataModule(
        toy_rows[:4], toy_rows[4:], spacing_mm=3.2, spatial_size=(96, 128), batch_size=2
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 1, 96, 128)
    assert batch["mask"].shape == (2, 1, 96, 128)
    assert set(torch.unique(batch["mask"]).tolist()) <= {0, 1, 2}


def test_rows_without_masks_are_refused(toy_rows):
    with pytest.raises(ValueError, match="no mask_path"):
        SegmentationDataModule([{**toy_rows[0], "mask_path": None}], toy_rows[1:2])


def test_training_lowers_the_loss_and_prediction_is_cached(toy_rows, tmp_path):
    L.seed_everything(0)
    module = FemurSegmentationModule(
        channels=(8, 16, 32),
        num_res_units=0,
        lr=1e-2,
        spacing_mm=3.2,
        spatial_size=(96, 128),
        max_epochs=6,
    )
    dm = SegmentationDataModule(
        toy_rows[:4], toy_rows[4:], spacing_mm=3.2, spatial_size=(96, 128), batch_size=2
    )
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        before = module.loss(module(batch["image"]), batch["mask"]).item()
    trainer = L.Trainer(
        max_epochs=6,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=dm)
    module.eval()
    with torch.no_grad():
        after = module.loss(module(batch["image"]), batch["mask"]).item()
    assert after < 0.8 * before
    assert "seg/val_dice_right_femur" in trainer.callback_metrics

    checkpoint = tmp_path / "model.ckpt"
    trainer.save_checkpoint(checkpoint)
    model = load_segmentation_model(checkpoint)  # weights_only=True inside
    cache = MaskCache(tmp_path / "masks")
    studies = [(r["study_id"], r["image_path"]) for r in toy_rows[:3]]
    studies.append(("bad", str(tmp_path / "missing.png")))
    first = predict_masks(model, studies, cache, "ckpt-a", batch_size=2, progress=False)
    assert [p.cached for p in first[:3]] == [False] * 3
    assert first[3].mask_path is None and first[3].error
    predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(first[0].mask_path)))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(toy_rows[0]["mask_path"]))
    assert predicted.shape == truth.shape  # mapped back to the original grid
    second = predict_masks(model, studies[:3], cache, "ckpt-a", progress=False)
    assert all(p.cached for p in second)
    third = predict_masks(model, studies[:1], cache, "ckpt-b", progress=False)
    assert not third[0].cached  # another checkpoint never reuses these masks


def test_postprocess_keeps_largest_component_and_fills_holes():
    label_map = np.zeros((40, 40), np.uint8)
    label_map[5:25, 5:15] = 1
    label_map[10:12, 8:10] = 0  # a hole
    label_map[30:33, 30:33] = 1  # an island
    label_map[5:25, 25:35] = 2
    out = postprocess_mask(label_map)
    assert out[11, 9] == 1 and out[31, 31] == 0
    assert (out == 2).sum() == (label_map == 2).sum()


class _StopAfterFirstEpoch(L.Callback):
    """Stands in for a kill: ends training once epoch 0's checkpoints are written (Lightning
    runs checkpoint callbacks last at an epoch's end, so stop at the next epoch's start)."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise SystemExit("killed")


def _fit_segmentation(toy_rows, folder, extra_callbacks=(), ckpt_path=None):
    from osteo.segmentation.stage import training_callbacks

    L.seed_everything(0, workers=True, verbose=False)
    module = FemurSegmentationModule(
        channels=(4, 8, 16), num_res_units=0, spacing_mm=3.2, spatial_size=(96, 128), max_epochs=3
    )
    dm = SegmentationDataModule(
        toy_rows[:4], toy_rows[4:], spacing_mm=3.2, spatial_size=(96, 128), batch_size=2
    )
    # The pipeline's own callbacks.
    callbacks = [*training_callbacks(folder), *extra_callbacks]
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        default_root_dir=folder,
        callbacks=callbacks,
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return torch.load(folder / "last.ckpt", weights_only=True)


def test_killed_segmentation_training_resumes_bit_for_bit(toy_rows, tmp_path):
    """Augmentation draws from MONAI's own generators: they must be restored too."""
    uninterrupted = _fit_segmentation(toy_rows, tmp_path / "a")
    with pytest.raises(SystemExit):
        _fit_segmentation(toy_rows, tmp_path / "b", [_StopAfterFirstEpoch()])
    assert torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["epoch"] == 0
    resumed = _fit_segmentation(toy_rows, tmp_path / "b", ckpt_path=tmp_path / "b" / "last.ckpt")
    assert resumed["epoch"] == uninterrupted["epoch"] == 2
    for name, tensor in uninterrupted["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name


def test_fast_postprocessing_equals_scipy_on_random_masks():
    """The bounding-box hole filling and bincount sizes give scipy's whole-image results,
    including regions touching the image edge and holes next to the box's border."""
    from scipy import ndimage

    from osteo.segmentation.masks import _component_sizes, _fill_holes

    rng = np.random.default_rng(0)
    for trial in range(60):
        shape = (int(rng.integers(8, 40)), int(rng.integers(8, 40)))
        region = ndimage.binary_opening(rng.random(shape) < rng.uniform(0.3, 0.8))
        if trial % 3 == 0:  # a ring around a hole, pushed against an edge
            region[:, :3] = True
        assert np.array_equal(_fill_holes(region), ndimage.binary_fill_holes(region))
        components, count = ndimage.label(region)
        if count:
            expected = ndimage.sum_labels(np.ones_like(components), components, range(1, count + 1))
            assert np.array_equal(_component_sizes(components, count), expected)
    assert not _fill_holes(np.zeros((5, 5), dtype=bool)).any()


def test_dice_figures_are_cached_by_both_masks_digests(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import pandas as pd

    from osteo.data.stage import CohortData
    from osteo.pipeline.file_hashes import FileHashes
    from osteo.segmentation import stage as segmentation_stage

    def write(name: str, labels: np.ndarray):
        path = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(sitk.GetImageFromArray(labels), str(path))
        return path

    def context():  # a new run: file digests are computed afresh
        return SimpleNamespace(
            hashes=FileHashes(None, progress=False), cache_dir=tmp_path / "cache"
        )

    truth = np.zeros((20, 30), np.uint8)
    truth[5:15, 3:10], truth[5:15, 20:27] = 1, 2  # 70 pixels per femur
    predicted = truth.copy()
    predicted[5:15, 3] = 0  # the right femur loses a column: 60 pixels
    manifest = pd.DataFrame(
        {"study_id": ["S1"], "split": ["val"], "mask_path": [str(write("truth", truth))]}
    )
    data = CohortData(manifest, tmp_path / "manifest.csv")
    masks = {"S1": write("predicted", predicted)}

    first = segmentation_stage._dice_figures(context(), data, masks)
    assert first["val"]["n"] == 1
    assert first["val"]["dice_right_mean"] == pytest.approx(2 * 60 / 130, abs=1e-4)
    assert first["val"]["dice_left_mean"] == 1.0

    def no_decoding(path):
        raise AssertionError(f"{path} decoded although its Dice figures are cached")

    monkeypatch.setattr(segmentation_stage, "read_label_map", no_decoding)
    assert segmentation_stage._dice_figures(context(), data, masks) == first
    # Another predicted mask is another key: the figures are computed again.
    predicted[5:15, 4] = 0
    write("predicted", predicted)
    with pytest.raises(AssertionError, match="decoded although"):
        segmentation_stage._dice_figures(context(), data, masks)
