"""The LightningDataModule of femur segmentation training, over manifest rows with masks."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from monai.data import CacheDataset, DataLoader

from osteo.data.transforms import segmentation_transforms

__all__ = ["SegmentationDataModule"]


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
        self.train_set = self._dataset(self.train_records, train=True)
        self.val_set = self._dataset(self.val_records, train=False)

    def _dataset(self, records, train: bool) -> CacheDataset:
        """Records with their transforms (augmented when ``train``), decoded once and cached."""
        return CacheDataset(
            records,
            segmentation_transforms(self.spacing_mm, self.spatial_size, train=train),
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
