"""MONAI dictionary transform chains: loading through osteo's reader, segmentation inputs.

Images and masks become channel-first MONAI ``MetaTensor`` s whose affine holds the pixel
spacing, so MONAI's own ``Spacingd``/``Invertd`` resample them and map predictions back.
Left/right flips are never used as augmentation: the mask labels are the patient's sides.
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

from osteo.data.io import MissingSpacingWarning, read_radiograph
from osteo.data.masks import MaskFormatError, read_label_map

__all__ = [
    "LoadRadiographd",
    "read_mask",
    "segmentation_transforms",
    "segmentation_inference_transforms",
]


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


def _deterministic(spacing_mm: float, spatial_size: Sequence[int], with_mask: bool):
    keys = ["image", "mask"] if with_mask else ["image"]
    modes = ("bilinear", "nearest") if with_mask else ("bilinear",)
    return [
        LoadRadiographd(keys=keys),
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
    """Image-only chain for prediction; invertible so masks map back to the original grid."""
    return Compose(
        [*_deterministic(spacing_mm, spatial_size, with_mask=False), NormalizeIntensityd("image")]
    )
