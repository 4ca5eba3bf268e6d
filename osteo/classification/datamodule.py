"""The LightningDataModule of the hip classifier, over one tensor file per split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import Dataset, WeightedRandomSampler

from osteo.classification.inputs import CLINICAL_NAMES, Standardizer
from osteo.constants import EVALUATED_SPLITS

__all__ = [
    "HipDataModule",
    "HipDataset",
    "load_split_tensors",
]


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

    def train_dataloader(self) -> TorchDataLoader:
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
        return [n for n in EVALUATED_SPLITS if n in self.splits]

    def predict_dataloader(self) -> list[TorchDataLoader]:
        return [self._eval_loader(name) for name in self.predict_split_names()]

    def state_dict(self) -> dict:
        return {key: scaler.state_dict() for key, scaler in self.scalers.items()}

    def load_state_dict(self, state: dict) -> None:
        self.scalers = {key: Standardizer.from_state_dict(v) for key, v in state.items()}
