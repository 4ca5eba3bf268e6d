"""Native-resolution radiographs (0.15 mm, ~7 MP) through every per-study stage, ROI geometry
in mm across spacings, the segmentation input's anti-aliasing and the way back to the native
grid, and the hip crop's spacing in mm."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from osteo.classification.hips import extract_hip_crop
from osteo.classification.inputs import hip_crops
from osteo.config import ConfigError, crop_geometry, load_config
from osteo.data.io import read_radiograph
from osteo.data.masks import read_label_map
from osteo.data.synthetic import sample_cohort_table
from osteo.data.synthetic.render import render_attenuation, render_study
from osteo.data.transforms import (
    AntiAliasd,
    LoadRadiographd,
    antialias_plan,
    segmentation_inference_transforms,
    segmentation_transforms,
)
from osteo.radiomics.extractor import RadiomicsExtractor
from osteo.roi.geometry import place_rois
from osteo.segmentation.datamodule import SegmentationDataModule
from osteo.segmentation.masks import (
    MaskCache,
    labels_on_native_grid,
    postprocess_in_box,
    postprocess_mask,
    predict_masks,
)
from osteo.segmentation.module import FemurSegmentationModule

NATIVE_MM = 0.15  # site A's detector pitch (docs/synthetic.md)


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """One site-A study rendered at 0.15 mm (2,333 x 2,867 px), as a 16-bit PNG with its
    spacing, and its reference mask (PNG, same spacing); the study's row."""
    table = sample_cohort_table("tiny", seed=5)
    row = table[table["site"] == "A"].iloc[0].to_dict()
    rendered = render_study(row, spacing_mm=NATIVE_MM)
    folder = tmp_path_factory.mktemp("native")
    paths = {}
    for name, array in (("image", rendered.stored), ("mask", rendered.mask)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((NATIVE_MM, NATIVE_MM))
        paths[f"{name}_path"] = folder / f"{name}.png"
        sitk.WriteImage(image, str(paths[f"{name}_path"]))
    return {"row": row, "mask": rendered.mask, **paths}


def _tiny_unet(spacing_mm: float = 4.0) -> FemurSegmentationModule:
    torch.manual_seed(0)
    return FemurSegmentationModule(
        channels=(4, 8, 16), num_res_units=0, spacing_mm=spacing_mm, spatial_size=(128, 128)
    ).eval()


def _boxes_mm(label_map: np.ndarray, spacing: float) -> dict:
    result = place_rois(label_map, (spacing, spacing))
    assert result.ok, [hip.flags for hip in result.hips.values()]
    # The generator's frame: pixel i spans [i, i + 1) x spacing mm from the film's edge.
    return {slot: np.asarray(box, dtype=float) * spacing for slot, box in result.boxes().items()}


def test_native_study_through_every_stage(native, tmp_path):
    """Read, segment (an untrained network: the mask's grid, not its quality, is checked),
    ROI boxes, radiomics and both hip crops on one 0.15 mm radiograph."""
    radiograph = read_radiograph(native["image_path"])
    assert radiograph.shape == (2333, 2867) and radiograph.spacing == (NATIVE_MM, NATIVE_MM)

    (prediction,) = predict_masks(
        _tiny_unet(),
        [("S1", str(native["image_path"]))],
        MaskCache(tmp_path),
        "ckpt",
        progress=False,
    )
    assert prediction.error is None
    predicted, spacing = read_label_map(prediction.mask_path)
    assert predicted.shape == radiograph.shape and spacing == (NATIVE_MM, NATIVE_MM)

    label_map, mask_spacing = read_label_map(native["mask_path"])
    rois = place_rois(label_map, mask_spacing)
    assert rois.ok
    extractor = RadiomicsExtractor("configs/radiomics/default.yaml")
    features, failures = extractor.extract_study_with_failures(
        radiograph.pixels, rois.boxes(), radiograph.spacing
    )
    assert not failures and np.isfinite(features).all()

    crop = crop_geometry(load_config("configs/base.yaml").train)
    for spacing_mm in (crop.spacing_mm, 0.4):
        pixels = int(round(110.4 / spacing_mm))
        crops = hip_crops(
            radiograph.pixels, radiograph.spacing, label_map, rois, pixels * spacing_mm, pixels
        )
        for side in ("right", "left"):
            assert crops[side].pixels.shape == (pixels, pixels)
            assert np.isfinite(crops[side].pixels).all()
            assert crops[side].step == pytest.approx((spacing_mm / NATIVE_MM,) * 2)


def test_roi_boxes_in_mm_agree_across_spacings(native):
    """The same study's reference mask at 0.15 mm and at 1 mm: every box edge within one
    coarse pixel (1 mm) plus one native pixel (each edge rounds to its own grid)."""
    coarse = render_attenuation(native["row"], 1.0).mask
    fine, rough = _boxes_mm(native["mask"], NATIVE_MM), _boxes_mm(coarse, 1.0)
    assert fine.keys() == rough.keys() and len(fine) == 4
    for slot in fine:
        assert np.abs(fine[slot] - rough[slot]).max() <= 1.0 + NATIVE_MM, slot


def test_reference_mask_survives_the_trip_to_2_mm_and_back(native):
    """The mask through the segmentation chain (anti-aliasing blocks, 2 mm, padding) as
    one-hot logits, then back to the native grid: Dice > 0.97, and each femur's centroid
    where the coarse mask's is in mm (0.05 mm: a grid offset of half a block or of a coarse
    pixel would move it 0.3-1 mm; the coarse mask's own nearest-pixel rounding, up to ~0.25
    mm here, is not the mapping's)."""
    chain = segmentation_transforms(2.0, (224, 224), train=False)
    item = chain({"image": str(native["image_path"]), "mask": str(native["mask_path"])})
    assert tuple(item["image"].shape) == (1, 224, 224)
    affine = np.asarray(item["image"].affine)
    coarse = np.asarray(item["mask"][0])
    logits = np.stack([(coarse == k).astype(np.float32) for k in range(3)])
    back = labels_on_native_grid(logits, affine, (NATIVE_MM, NATIVE_MM), native["mask"].shape)
    for label in (1, 2):
        ref, got = native["mask"] == label, back == label
        assert 2 * (ref & got).sum() / (ref.sum() + got.sum()) > 0.97
        coarse_mm = affine[:2, :2] @ np.argwhere(coarse == label).mean(axis=0) + affine[:2, 2]
        back_mm = np.argwhere(got).mean(axis=0) * NATIVE_MM
        assert np.abs(back_mm - coarse_mm).max() < 0.05, (label, back_mm, coarse_mm)


def test_segmentation_input_keeps_positions_in_mm(tmp_path):
    """A bright disc at a known place on a 0.15 mm image: after anti-aliasing and resampling
    to 2 mm its intensity centroid, through the input's affine, is there within 0.05 mm."""
    rows, cols = np.mgrid[0:1200, 0:1000]
    centre = np.array([90.3, 70.8])  # mm
    disc = np.hypot(rows * NATIVE_MM - centre[0], cols * NATIVE_MM - centre[1]) < 20.0
    image = sitk.GetImageFromArray((100 + 1000 * disc).astype(np.uint16))
    image.SetSpacing((NATIVE_MM, NATIVE_MM))
    sitk.WriteImage(image, str(tmp_path / "disc.png"))
    item = segmentation_inference_transforms(2.0, (160, 160))({"image": str(tmp_path / "disc.png")})
    pixels = np.asarray(item["image"][0])
    weight = np.clip(pixels - np.median(pixels), 0, None)
    index = np.array([(np.indices(pixels.shape)[k] * weight).sum() / weight.sum() for k in (0, 1)])
    affine = np.asarray(item["image"].affine)
    assert np.abs(affine[:2, :2] @ index + affine[:2, 2] - centre).max() < 0.05


def test_native_grid_labels_equal_interpolating_every_pixel():
    """Only the coarse foreground's neighbourhood is interpolated, yet the labels equal those
    of bilinear logits at every native pixel, then the arg-max."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 40, 50)).astype(np.float32)
    logits[0] += 3.0  # background wins ...
    logits[1, 10:18, 8:20] += 6.0  # ... except in two patches
    logits[2, 25:30, 30:44] += 6.0
    affine = np.array([[2.0, 0.0, -3.0], [0.0, 2.0, 1.0], [0.0, 0.0, 1.0]])
    spacing, shape = (0.3, 0.25), (280, 410)
    fast = labels_on_native_grid(logits, affine, spacing, shape, rows_per_chunk=37)
    rows = np.clip((np.arange(shape[0]) * spacing[0] - affine[0, 2]) / affine[0, 0], 0, 39)
    cols = np.clip((np.arange(shape[1]) * spacing[1] - affine[1, 2]) / affine[1, 1], 0, 49)
    grid = np.meshgrid(rows, cols, indexing="ij")
    from scipy import ndimage

    full = np.stack([ndimage.map_coordinates(c, grid, order=1) for c in logits])
    assert (fast == np.argmax(full, axis=0)).all()
    assert {1, 2} <= set(np.unique(fast))
    assert (postprocess_in_box(fast) == postprocess_mask(fast)).all()


def test_antialiasing_removes_texture_finer_than_the_segmentation_pixels(tmp_path):
    """Stripes of a 0.3 mm period at 0.15 mm: at 2 mm they must average out; resampling
    alone (Spacingd without AntiAliasd) folds them into a coarse false pattern."""
    rows = np.arange(1200)[:, None] * np.ones((1, 1000))
    stripes = (1000 + 400 * ((rows + np.arange(1000)[None] // 7) % 2)).astype(np.uint16)
    image = sitk.GetImageFromArray(stripes)
    image.SetSpacing((NATIVE_MM, NATIVE_MM))
    path = tmp_path / "stripes.png"
    sitk.WriteImage(image, str(path))
    loaded = LoadRadiographd(keys=("image",))({"image": str(path)})
    filtered = AntiAliasd(2.0)(loaded)["image"]
    assert antialias_plan(NATIVE_MM, 2.0) == (5, pytest.approx((2.0 / 0.75 - 1) / 2))
    assert tuple(filtered.shape) == (1, 240, 200)
    assert np.allclose(np.asarray(filtered.affine)[:2, 2], 2 * NATIVE_MM)  # first block's centre

    from monai.transforms import Spacingd

    resample = Spacingd(keys="image", pixdim=(2.0, 2.0), mode="bilinear")
    smooth = np.asarray(resample({"image": filtered})["image"])[0, 2:-2, 2:-2]
    aliased = np.asarray(resample(dict(loaded))["image"])[0, 2:-2, 2:-2]
    assert smooth.std() < 5 < 50 < aliased.std()


def test_monai_cache_holds_only_downsampled_inputs(native):
    """CacheDataset keeps the chain's deterministic part: 2 mm tensors, not the 7 MP image."""
    row = {
        "study_id": "S1",
        "image_path": str(native["image_path"]),
        "mask_path": str(native["mask_path"]),
    }
    data = SegmentationDataModule([row], [row], spacing_mm=2.0, spatial_size=(224, 224))
    data.setup()
    cached = data.train_set._cache[0]
    assert tuple(cached["image"].shape) == (1, 224, 224)
    assert tuple(cached["mask"].shape) == (1, 224, 224)
    sizes = [v.numel() for v in cached.values() if isinstance(v, torch.Tensor)]
    assert max(sizes) == 224 * 224


def test_inference_chain_reads_each_radiograph_once(native, monkeypatch):
    calls = []
    import osteo.data.transforms as transforms

    real = transforms.read_radiograph
    monkeypatch.setattr(transforms, "read_radiograph", lambda p: calls.append(p) or real(p))
    segmentation_inference_transforms(2.0, (224, 224))({"image": str(native["image_path"])})
    assert calls == [str(native["image_path"])]


def test_crop_window_equals_smoothing_the_whole_image():
    """The crop smooths a window around itself: the same values as smoothing everything, at
    the image's edges and off the image too."""
    from scipy import ndimage

    rng = np.random.default_rng(1)
    image = rng.normal(size=(900, 700)).astype(np.float32)
    spacing, span, size = (0.15, 0.15), 60.0, 48
    step = span / size / spacing[0]
    whole = ndimage.gaussian_filter(image, (step - 1) / 2)
    for centre in ((450, 350), (20, 690), (1000, -50)):
        offsets = np.arange(size) - (size - 1) / 2
        grid = np.meshgrid(centre[0] + offsets * step, centre[1] + offsets * step, indexing="ij")
        expected = ndimage.map_coordinates(whole, grid, order=1, mode="nearest")
        lo, hi = np.percentile(expected, [1, 99])
        expected = np.clip(expected, lo, hi)
        expected = (expected - expected.mean()) / max(float(expected.std()), 1e-6)
        got = extract_hip_crop(image, spacing, centre, span, size, mirror=False)
        np.testing.assert_allclose(got, expected.astype(np.float32), atol=1e-5)


def test_crop_spacing_is_the_source_of_truth():
    base = crop_geometry(load_config("configs/base.yaml").train)
    assert (base.pixels, base.spacing_mm, base.span_mm) == (96, 1.15, pytest.approx(110.4))
    fine = crop_geometry(load_config("configs/base.yaml", ["train.crop_spacing_mm=0.4"]).train)
    assert fine.pixels == 276
    with pytest.raises(ConfigError, match=r"train\.crop_size.*train\.crop_spacing_mm=2\.3"):
        load_config("configs/base.yaml", ["train.crop_size=48"])
    with pytest.raises(ConfigError, match=r"train\.crop_spacing_mm"):
        load_config("configs/base.yaml", ["train.crop_spacing_mm=0"])
