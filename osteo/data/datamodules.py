"""LightningDataModules over the manifest: femur segmentation (and, later, the hip classifier)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import Dataset, WeightedRandomSampler

from osteo.data.transforms import segmentation_transforms

__all__ = [
    "SegmentationDataModule",
    "HipDataModule",
    "HipDataset",
    "Standardizer",
    "CLINICAL_NAMES",
    "load_split_tensors",
]


def _records(rows: Sequence[dict]) -> list[dict]:
    out = []
    for row in rows:
        if not row.get("mask_path"):
            raise ValueError(
                f"study {row.get('study_id')!r} has no mask_path; "
                "segmentation training needs a mask for every study it uses"
            )
        out.append(
            {"image": row["image_path"], "mask": row["mask_path"], "study_id": row["study_id"]}
        )
    return out


class SegmentationDataModule(L.LightningDataModule):
    """Train/val data for ``FemurSegmentationModule`` from manifest rows that have masks.

    The deterministic part (reading, resampling, intensity scaling, padding) is cached in
    memory by MONAI's ``CacheDataset``; augmentation runs on the training split only.
    """

    def __init__(
        self,
        train_rows: Sequence[dict],
        val_rows: Sequence[dict],
        spacing_mm: float = 2.0,
        spatial_size: Sequence[int] = (256, 256),
        batch_size: int = 8,
        num_workers: int = 0,
        cache_rate: float = 1.0,
    ) -> None:
        super().__init__()
        if not train_rows:
            raise ValueError("SegmentationDataModule: no training studies with masks")
        if not val_rows:
            raise ValueError("SegmentationDataModule: no validation studies with masks")
        self.train_records = _records(train_rows)
        self.val_records = _records(val_rows)
        self.spacing_mm = spacing_mm
        self.spatial_size = tuple(spatial_size)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache_rate = cache_rate

    def setup(self, stage: str | None = None) -> None:
        if getattr(self, "train_set", None) is not None:
            return
        self.train_set = CacheDataset(
            self.train_records,
            segmentation_transforms(self.spacing_mm, self.spatial_size, train=True),
            cache_rate=self.cache_rate,
            num_workers=None,
            progress=False,
        )
        self.val_set = CacheDataset(
            self.val_records,
            segmentation_transforms(self.spacing_mm, self.spatial_size, train=False),
            cache_rate=self.cache_rate,
            num_workers=None,
            progress=False,
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            drop_last=len(self.train_set) > self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers
        )


# --------------------------------------------------------------------------- classifier data

CLINICAL_NAMES = ("age", "sex_male", "weight")


class Standardizer:
    """Per-feature mean, std and median fitted on the training split only, saved with the model.

    The median fills missing values (when the policy allows it) before standardising.
    """

    def __init__(self, mean, std, medians, names: Sequence[str]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.medians = np.asarray(medians, dtype=np.float32)
        self.names = list(names)

    @classmethod
    def fit(cls, values: np.ndarray, names: Sequence[str]) -> Standardizer:
        values = np.where(np.isfinite(values), values, np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are handled below
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0)
            medians = np.nanmedian(values, axis=0)
        # A constant feature (std 0) carries nothing; dividing by 1 keeps it finite.
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        medians = np.where(np.isfinite(medians), medians, 0.0)
        return cls(mean, std, medians, names)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def state_dict(self) -> dict:
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "medians": self.medians.tolist(),
            "names": self.names,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> Standardizer:
        return cls(state["mean"], state["std"], state["medians"], state["names"])


def load_split_tensors(path: str | Path) -> dict:
    """One split's tensors as written by the pipeline (no arbitrary unpickling)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    required = {"study_id", "clinical", "label", "tscore"}
    missing = required - set(data)
    if missing:
        raise ValueError(f"{path}: split tensor file lacks {sorted(missing)}")
    return data


class HipDataset(Dataset):
    """Rows of one split as dicts; light augmentation of the hip crops when training."""

    def __init__(self, data: dict, inputs: set[str], augment: bool, seed: int = 0) -> None:
        self.data = data
        self.inputs = inputs
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.data["study_id"])

    def _augment(self, crop: torch.Tensor) -> torch.Tensor:
        # Small shifts and contrast/brightness changes: what varies between radiographs of
        # the same bone. No flips: the left crop is already mirrored to match the right.
        shift = torch.randint(-4, 5, (2,)).tolist()
        crop = torch.roll(crop, shifts=shift, dims=(-2, -1))
        gain = 1.0 + 0.1 * (torch.rand(1) * 2 - 1)
        bias = 0.1 * (torch.rand(1) * 2 - 1)
        return crop * gain + bias + 0.03 * torch.randn_like(crop)

    def __getitem__(self, index: int) -> dict:
        d = self.data
        item = {
            "study_id": d["study_id"][index],
            "clinical": d["clinical"][index],
            "label": d["label"][index],
            "tscore": d["tscore"][index],
        }
        if "texture" in self.inputs:
            item["texture"] = d["texture"][index]
        if "deep" in self.inputs:
            for side in ("right", "left"):
                crop = d[side][index].float()
                item[side] = self._augment(crop) if self.augment else crop
        return item


class HipDataModule(L.LightningDataModule):
    """Serves the classifier from one tensor file per split (made once by the pipeline).

    A batch is a dict: ``right``, ``left`` (hip crops, left mirrored; only when the head uses
    deep features), ``clinical`` (age, sex, weight; standardised), ``texture`` (radiomics;
    standardised), ``label``, ``tscore``, ``study_id``. Standardisers are fitted on the
    training split only and saved in checkpoints (``state_dict``).

    Missing clinical values: ``"error"`` (default) names the studies; ``"median"`` imputes the
    training median. Missing texture values (a failed ROI) are imputed with the training
    median and counted in ``imputed``. Class imbalance: ``"sampler"`` draws positives more
    often (a weighted sampler); ``"pos_weight"`` leaves sampling alone and exposes
    ``pos_weight`` (negatives/positives in train) for the loss; ``"none"`` does neither.
    """

    def __init__(
        self,
        split_files: Mapping[str, str | Path],
        inputs: Sequence[str] = ("deep", "texture", "clinical"),
        batch_size: int = 32,
        num_workers: int = 0,
        class_balance: str = "pos_weight",
        clinical_missing: str = "error",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if "train" not in split_files:
            raise ValueError("HipDataModule needs a 'train' split file")
        if class_balance not in ("sampler", "pos_weight", "none"):
            raise ValueError(
                f"class_balance={class_balance!r}; expected sampler, pos_weight or none"
            )
        if clinical_missing not in ("error", "median"):
            raise ValueError(f"clinical_missing={clinical_missing!r}; expected error or median")
        self.split_files = {k: Path(v) for k, v in split_files.items()}
        self.inputs = set(inputs)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.class_balance = class_balance
        self.clinical_missing = clinical_missing
        self.seed = seed
        self.splits: dict[str, dict] = {}
        self.scalers: dict[str, Standardizer] = {}
        self.imputed: dict[str, dict[str, int]] = {}

    # -- scaling ---------------------------------------------------------------------------

    def _fill_missing(self, name: str, data: dict, key: str, medians: np.ndarray) -> np.ndarray:
        values = data[key].numpy().astype(np.float32)
        missing = ~np.isfinite(values)
        if key == "clinical" and missing.any() and self.clinical_missing == "error":
            rows = np.flatnonzero(missing.any(axis=1))[:10]
            ids = [data["study_id"][i] for i in rows]
            cols = sorted({CLINICAL_NAMES[j] for j in np.nonzero(missing)[1]})
            raise ValueError(
                f"{self.split_files[name]}: {int(missing.any(axis=1).sum())} studies miss "
                f"clinical values ({', '.join(cols)}), e.g. {ids}; fill them in the manifest or "
                "set data.clinical_missing=median to impute the training median"
            )
        if missing.any():
            values = np.where(missing, medians[None, :], values)
        self.imputed.setdefault(name, {})[key] = int(missing.any(axis=1).sum())
        return values

    def _fit_scalers(self) -> None:
        train = self.splits["train"]
        for key in ("clinical", "texture"):
            if key not in train:
                continue
            values = train[key].numpy().astype(np.float32)
            names = train.get(f"{key}_names", [f"{key}_{i}" for i in range(values.shape[1])])
            self.scalers[key] = Standardizer.fit(values, names)

    def _apply_scalers(self, name: str, data: dict) -> dict:
        out = dict(data)
        for key, scaler in self.scalers.items():
            if key in data:
                filled = self._fill_missing(name, data, key, scaler.medians)
                out[key] = torch.from_numpy(scaler(filled))
        out["label"] = data["label"].float()
        out["tscore"] = data["tscore"].float()
        return out

    # -- Lightning hooks -------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = {name: load_split_tensors(path) for name, path in self.split_files.items()}
        self.splits = raw
        if not self.scalers:
            self._fit_scalers()
        self.splits = {name: self._apply_scalers(name, data) for name, data in raw.items()}

    @property
    def pos_weight(self) -> float:
        labels = self.splits["train"]["label"]
        positives = float(labels.sum())
        negatives = float(len(labels) - positives)
        return negatives / positives if positives > 0 else 1.0

    def dataset(self, name: str, augment: bool = False) -> HipDataset:
        return HipDataset(self.splits[name], self.inputs, augment, self.seed)

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train", augment=True)
        sampler = None
        if self.class_balance == "sampler":
            labels = self.splits["train"]["label"].numpy()
            weights = np.where(
                labels > 0.5, 1.0 / max(1, labels.sum()), 1.0 / max(1, (labels < 0.5).sum())
            )
            sampler = WeightedRandomSampler(
                torch.as_tensor(weights, dtype=torch.double),
                num_samples=len(labels),
                replacement=True,
                generator=torch.Generator().manual_seed(self.seed),
            )
        return TorchDataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=len(dataset) > self.batch_size,
            persistent_workers=self.num_workers > 0,
        )

    def _eval_loader(self, name: str) -> TorchDataLoader:
        return TorchDataLoader(
            self.dataset(name),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> TorchDataLoader:
        return self._eval_loader("val")

    def predict_split_names(self) -> list[str]:
        return [n for n in ("val", "internal_test", "external_test") if n in self.splits]

    def predict_dataloader(self) -> list[TorchDataLoader]:
        return [self._eval_loader(name) for name in self.predict_split_names()]

    def state_dict(self) -> dict:
        return {key: scaler.state_dict() for key, scaler in self.scalers.items()}

    def load_state_dict(self, state: dict) -> None:
        self.scalers = {key: Standardizer.from_state_dict(v) for key, v in state.items()}
