"""FemurSegmentationModule: a MONAI network, DiceCE loss, Dice per femur as the metric."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot

from osteo.segmentation.networks import NUM_CLASSES, create_segmentation_network

__all__ = ["FemurSegmentationModule", "FEMUR_NAMES"]

FEMUR_NAMES = ("right_femur", "left_femur")  # labels 1 and 2, the patient's sides


class FemurSegmentationModule(L.LightningModule):
    def __init__(
        self,
        network: str = "unet",
        channels: Sequence[int] = (16, 32, 64, 128),
        num_res_units: int = 1,
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        max_epochs: int = 10,
        spacing_mm: float = 2.0,
        spatial_size: Sequence[int] = (256, 256),
    ) -> None:
        super().__init__()
        # spacing and size are saved with the weights: prediction must resample the same way.
        self.save_hyperparameters()
        self.net = create_segmentation_network(network, list(channels), num_res_units, dropout)
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self.dice = {
            stage: DiceMetric(include_background=False, reduction="mean_batch")
            for stage in ("val", "test")
        }

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def training_step(self, batch, batch_idx):
        logits = self(batch["image"])
        loss = self.loss(logits, batch["mask"])
        self.log("seg/train_loss", loss, prog_bar=True, batch_size=len(logits), sync_dist=True)
        return loss

    def _evaluate(self, batch, stage: str):
        logits = self(batch["image"])
        loss = self.loss(logits, batch["mask"])
        prediction = one_hot(logits.argmax(1, keepdim=True), NUM_CLASSES)
        self.dice[stage](prediction, one_hot(batch["mask"], NUM_CLASSES))
        self.log(f"seg/{stage}_loss", loss, batch_size=len(logits), sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def _log_dice(self, stage: str) -> None:
        # DiceMetric buffers per-image scores; aggregate() gathers them across DDP ranks.
        per_femur = self.dice[stage].aggregate()
        self.dice[stage].reset()
        per_femur = per_femur.to(self.device)
        for name, value in zip(FEMUR_NAMES, per_femur, strict=True):
            self.log(f"seg/{stage}_dice_{name}", value, sync_dist=False)
        self.log(f"seg/{stage}_dice", per_femur.mean(), prog_bar=True, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_dice("val")

    def on_test_epoch_end(self) -> None:
        self._log_dice("test")

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, self.hparams.max_epochs)
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
