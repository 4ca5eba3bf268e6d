"""MONAI dictionary transform chains: loading through osteo's reader, segmentation inputs.

Images and masks become channel-first MONAI ``MetaTensor`` s whose affine holds the pixel
spacing (index -> mm), so MONAI's own ``Spacingd`` resamples them and the final affine maps a
prediction back to the radiograph's grid (``osteo.segmentation.masks``).
Left/right flips are never used as augmentation: the mask labels are the patient's sides.

A native radiograph (0.1-0.2 mm) is reduced to the segmentation spacing (2-5 mm, 10-35x
coarser) without aliasing by ``AntiAliasd``: block means, then a Gaussian, then ``Spacingd``'s
interpolation (interpolation alone would sample noise and trabecular texture finer than the
new pixels into false patterns). Only the down-sampled tensors reach MONAI's cache.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    EnsureTyped,
    MapTransform,
    NormalizeIntensityd,
    RandAdjustContrastd,
    RandAffined,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    ResizeWithPadOrCropd,
    ScaleIntensityRangePercentilesd,
    Spacingd,
)
from scipy import ndimage

from osteo.data.io import MissingSpacingWarning, read_radiograph
from osteo.data.masks import MaskFormatError, read_label_map

__all__ = [
    "SEGMENTATION_INPUT_VERSION",
    "AntiAliasd",
    "antialias_plan",
    "LoadRadiographd",
    "read_mask",
    "segmentation_transforms",
    "segmentation_inference_transforms",
]


# Part of the segmentation model's and the masks' cache keys: bump it when the network's
# input for an image changes.
SEGMENTATION_INPUT_VERSION = 2


def read_mask(path: str) -> np.ndarray:
    """A femur label map (uint8; 0 background, 1 right femur, 2 left femur)."""
    try:
        return read_label_map(path)[0]
    except MaskFormatError as err:
        raise MaskFormatError(f"{path}: {err}") from None


def _as_meta_tensor(array: np.ndarray, spacing: tuple[float, float], path: str) -> MetaTensor:
    # MONAI's 2D affine is 3x3 over (row, column): the diagonal carries the spacing in mm.
    affine = torch.diag(torch.tensor([spacing[0], spacing[1], 1.0], dtype=torch.float64))
    meta = {"filename_or_obj": path, "spacing": np.asarray(spacing, dtype=np.float64)}
    return MetaTensor(torch.as_tensor(array)[None], affine=affine, meta=meta)


class LoadRadiographd(MapTransform):
    """Load ``image`` (and optionally ``mask``) paths through ``osteo.data.io``.

    A radiograph without spacing uses ``default_spacing`` (mm), recorded in the meta data, so
    the pipeline still runs and its outputs say the sizes are assumed.
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "mask"),
        image_key: str = "image",
        mask_key: str = "mask",
        default_spacing: float = 0.15,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.mask_key = mask_key
        self.default_spacing = float(default_spacing)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        spacing: tuple[float, float] | None = None
        for key in self.key_iterator(d):
            path = str(d[key])
            if key == self.mask_key:
                if spacing is None:
                    raise ValueError("LoadRadiographd: load the image key before the mask key")
                array = read_mask(path)
                d[key] = _as_meta_tensor(array, spacing, path)
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MissingSpacingWarning)
                radiograph = read_radiograph(path)
            spacing = radiograph.spacing or (self.default_spacing, self.default_spacing)
            d[key] = _as_meta_tensor(radiograph.pixels, spacing, path)
            d["spacing_assumed"] = radiograph.spacing is None
            d["original_shape"] = radiograph.pixels.shape
        return d


def antialias_plan(spacing: float, target: float) -> tuple[int, float]:
    """(block, sigma) for one axis going from ``spacing`` to ``target`` mm.

    ``block``: odd (a mask's centre pixel then sits at the block's centre), at most half the
    ratio, so at least two block pixels fall in each target pixel; 1 when the ratio is < 3.
    ``sigma``: the Gaussian, in block pixels, for the rest of the way: scikit-image's
    anti-aliasing rule for ``rescale``, max(0, (ratio - 1) / 2).
    """
    ratio = target / spacing
    block = max(1, int(ratio // 2))
    if block % 2 == 0:
        block -= 1
    return block, max(0.0, (ratio / block - 1.0) / 2.0)


class AntiAliasd(MapTransform):
    """Low-pass the image (and reduce the mask alike) before ``Spacingd`` to ``target_mm``.

    The image: means of ``block`` x ``block`` pixels, then a Gaussian (``antialias_plan``);
    the mask: each block's centre pixel, so both keep one grid. The affine records the block
    grid (spacing x block, origin at the first block's centre), so ``Spacingd`` and the
    mapping back to the radiograph stay exact in mm; rows and columns past the last whole
    block are dropped (less than one block, at most ~1 mm at the film's edge). The meta
    ``spacing`` stays the radiograph's.
    """

    def __init__(
        self,
        target_mm: float,
        image_key: str = "image",
        mask_key: str = "mask",
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__((image_key, mask_key), allow_missing_keys)
        self.target_mm = float(target_mm)
        self.image_key, self.mask_key = image_key, mask_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        image = d[self.image_key]
        spacing = [float(v) for v in image.meta["spacing"]]
        plans = [antialias_plan(s, self.target_mm) for s in spacing]
        blocks = [b for b, _ in plans]
        step = np.diag([float(blocks[0]), float(blocks[1]), 1.0])
        step[:2, 2] = [(b - 1) / 2.0 for b in blocks]
        for key in self.key_iterator(d):
            tensor = d[key]
            array = np.asarray(tensor.array[0])
            br, bc = blocks
            rows, cols = (array.shape[0] // br) * br, (array.shape[1] // bc) * bc
            if key == self.mask_key:
                out = array[(br - 1) // 2 : rows : br, (bc - 1) // 2 : cols : bc]
            else:
                out = _block_mean(array[:rows, :cols].astype(np.float32, copy=False), blocks)
                sigmas = [s for _, s in plans]
                if max(sigmas) > 0.3:
                    out = ndimage.gaussian_filter(out, sigmas)
            affine = tensor.affine.to(torch.float64) @ torch.as_tensor(step, dtype=torch.float64)
            meta = {k: v for k, v in tensor.meta.items() if k not in ("affine", "original_affine")}
            pixels = torch.as_tensor(np.ascontiguousarray(out))[None]
            d[key] = MetaTensor(pixels, affine=affine, meta=meta)
        return d


def _block_mean(array: np.ndarray, blocks: Sequence[int]) -> np.ndarray:
    br, bc = blocks
    if br == bc == 1:
        return array
    rows, cols = array.shape[0] // br, array.shape[1] // bc
    return array.reshape(rows, br, cols, bc).mean(axis=(1, 3), dtype=np.float32)


def _deterministic(spacing_mm: float, spatial_size: Sequence[int], with_mask: bool):
    keys = ["image", "mask"] if with_mask else ["image"]
    modes = ("bilinear", "nearest") if with_mask else ("bilinear",)
    return [
        LoadRadiographd(keys=keys),
        AntiAliasd(spacing_mm),
        Spacingd(keys=keys, pixdim=(spacing_mm, spacing_mm), mode=modes),
        # Percentile scaling: radiographs have no absolute grey scale (exposure, processing).
        ScaleIntensityRangePercentilesd(
            keys="image", lower=1, upper=99, b_min=0.0, b_max=1.0, clip=True
        ),
        ResizeWithPadOrCropd(keys=keys, spatial_size=tuple(spatial_size)),
        EnsureTyped(keys=keys, dtype=(torch.float32, torch.long) if with_mask else torch.float32),
    ]


def _augmentation():
    keys = ["image", "mask"]
    chain = [
        RandAffined(
            keys=keys,
            prob=0.8,
            rotate_range=np.deg2rad(8.0),
            scale_range=(0.1, 0.1),
            translate_range=(12, 12),
            mode=("bilinear", "nearest"),
            padding_mode="zeros",
        ),
        RandAdjustContrastd(keys="image", prob=0.5, gamma=(0.7, 1.5)),
        RandScaleIntensityd(keys="image", prob=0.5, factors=0.15),
        RandGaussianSmoothd(keys="image", prob=0.2, sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0)),
        RandGaussianNoised(keys="image", prob=0.3, std=0.03),
        NormalizeIntensityd(keys="image"),
    ]
    return chain


def segmentation_transforms(spacing_mm: float, spatial_size: Sequence[int], train: bool) -> Compose:
    """Deterministic loading and resampling, then (train only) random augmentation.

    MONAI's ``CacheDataset`` caches the chain up to its first random transform, so the slow
    part (reading and resampling) runs once per image, not once per epoch.
    """
    tail = _augmentation() if train else [NormalizeIntensityd(keys="image")]
    return Compose([*_deterministic(spacing_mm, spatial_size, with_mask=True), *tail])


def segmentation_inference_transforms(spacing_mm: float, spatial_size: Sequence[int]) -> Compose:
    """Image-only chain for prediction; the output's affine maps it back to the radiograph."""
    return Compose(
        [*_deterministic(spacing_mm, spatial_size, with_mask=False), NormalizeIntensityd("image")]
    )
