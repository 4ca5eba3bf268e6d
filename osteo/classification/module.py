"""OsteoporosisModule: the bilateral encoder and a fusion head, trained with Lightning.

Batch contract (a dict, as the data module's collate gives it):

- ``right``, ``left``: float ``[B, 1, H, W]`` hip crops, the left already mirrored; only
  needed (and only read) when the head uses ``deep``;
- ``clinical``: float ``[B, clinical_dim]`` and ``texture``: float ``[B, texture_dim]``, both
  standardised with training-split statistics; needed when the head uses them;
- ``label``: float ``[B]`` 0/1 (osteoporosis = lowest hip T-score <= -2.5);
- ``tscore``: float ``[B]``, NaN where unknown (only used by the auxiliary output);
- ``study_id``: ``list[str]``.

Metrics (torchmetrics, so they are gathered across DDP processes before being computed):
``<split>/auc``, ``<split>/accuracy``, ``<split>/sensitivity``, ``<split>/specificity`` for
``train``, ``val`` and each name of ``test_splits`` (one per test dataloader, in order), plus
``<split>/loss`` and, with the auxiliary output, ``<split>/tscore_mae``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryRecall,
    BinarySpecificity,
)

from osteo.classification.heads import create_head
from osteo.classification.hparams import ClassifierConfig, classifier_config
from osteo.classification.losses import binary_focal_loss_with_logits, masked_tscore_loss
from osteo.classification.siamese import BilateralEncoder
from osteo.constants import TRAINING_SPLITS

__all__ = ["OsteoporosisModule"]


def _classification_metrics(split: str) -> MetricCollection:
    return MetricCollection(
        {
            "auc": BinaryAUROC(),
            "accuracy": BinaryAccuracy(),
            "sensitivity": BinaryRecall(),
            "specificity": BinarySpecificity(),
        },
        prefix=f"{split}/",
    )


class OsteoporosisModule(pl.LightningModule):
    """Bilateral CNN (only if the head uses ``deep``) + fusion head -> P(osteoporosis).

    ``OsteoporosisModule(config, **overrides)``: ``config`` is a :class:`ClassifierConfig`, a
    mapping or None; keyword overrides win (e.g. ``pos_weight=datamodule.pos_weight``).
    """

    def __init__(self, config: ClassifierConfig | dict[str, Any] | None = None, **overrides):
        super().__init__()
        self.config = classifier_config(config, **overrides)
        # A plain dict (not the dataclass) so checkpoints load with weights_only=True and
        # load_from_checkpoint passes the values back as keyword overrides.
        self.save_hyperparameters(dataclasses.asdict(self.config))
        cfg = self.config
        if cfg.imbalance == "pos_weight" and cfg.pos_weight is None:
            warnings.warn(
                "imbalance='pos_weight' but no pos_weight given: using 1.0 (the data "
                "module normally sets n_neg / n_pos of the training split)",
                stacklevel=2,
            )

        self.encoder = (
            BilateralEncoder(
                cfg.backbone,
                embed_dim=cfg.embed_dim,
                combine=cfg.combine,
                pretrained=cfg.pretrained,
                weights_path=cfg.weights_path,
            )
            if cfg.uses_images
            else None
        )
        self.head = create_head(
            cfg.head_spec,
            deep_dim=self.encoder.out_features if self.encoder is not None else 0,
            texture_dim=cfg.texture_dim,
            clinical_dim=cfg.clinical_dim,
            hidden=cfg.hidden,
            dropout=cfg.dropout,
            aux_tscore=cfg.aux_tscore_weight > 0,
        )
        # A buffer so it follows the module to the GPU; not persistent: it lives in hparams.
        self.register_buffer(
            "pos_weight", torch.tensor(float(cfg.pos_weight or 1.0)), persistent=False
        )
        splits = [*TRAINING_SPLITS, *cfg.test_splits]
        # Keyed "split_<name>": a bare "train" would clash with nn.Module.train.
        self.metrics = nn.ModuleDict({f"split_{s}": _classification_metrics(s) for s in splits})
        self.tscore_mae = nn.ModuleDict(
            {f"split_{s}": MeanAbsoluteError() for s in splits} if self.has_aux_tscore else {}
        )
        # Set True to also return the deep features from predict_step (stacking, explanations).
        self.return_deep_features = False

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs):  # type: ignore[override]
        """As Lightning's, but without re-reading the initial backbone weights file.

        The checkpoint holds the trained weights; the file the run started from may not exist
        where the checkpoint is loaded.
        """
        kwargs.setdefault("pretrained", False)
        kwargs.setdefault("weights_path", None)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    # ------------------------------------------------------------------ model

    @property
    def inputs(self) -> frozenset[str]:
        """The batch inputs the head uses: a subset of {deep, texture, clinical}."""
        return self.head.inputs

    @property
    def uses_images(self) -> bool:
        return self.encoder is not None

    @property
    def logit_shift(self) -> float:
        """log w, subtracted from the logit before the sigmoid in prediction: training with
        pos_weight w inflates the optimal logit by log w (prior shift; see
        osteo/evaluation/recalibration.py), so the corrected probability is a risk."""
        if self.config.imbalance != "pos_weight":
            return 0.0
        return math.log(float(self.pos_weight))

    @property
    def has_aux_tscore(self) -> bool:
        return self.config.aux_tscore_weight > 0

    def deep_features(self, batch: dict[str, Any]) -> torch.Tensor:
        """The encoder's deep features ``[B, encoder.out_features]`` (256 for concat)."""
        if self.encoder is None:
            raise RuntimeError(f"head {self.config.head!r} does not use deep features")
        for side in ("right", "left"):
            if side not in batch:
                raise KeyError(f"head {self.config.head!r} needs images: batch has no {side!r}")
        return self.encoder(batch["right"], batch["left"])

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``{"logit": [B]}``, plus ``"tscore": [B]`` with the auxiliary output."""
        return self.head(self.head_features(batch))

    def head_features(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The head's inputs from a batch: ``{"deep"?, "texture"?, "clinical"?}``."""
        features = {}
        if "deep" in self.inputs:
            features["deep"] = self.deep_features(batch)
        for key in ("texture", "clinical"):
            if key in self.inputs:
                if key not in batch:
                    raise KeyError(
                        f"head {self.config.head!r} needs {key!r}; batch has {sorted(batch)}"
                    )
                features[key] = batch[key].float()
        return features

    # ------------------------------------------------------------------ steps

    def compute_losses(
        self, out: dict[str, torch.Tensor], batch: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        """``{"loss"}`` to minimise; with the auxiliary output also its two parts."""
        logit, label = out["logit"].float(), batch["label"].float()
        mode = self.config.imbalance
        if mode == "focal":
            classification = binary_focal_loss_with_logits(logit, label, self.config.focal_gamma)
        else:
            weight = self.pos_weight if mode == "pos_weight" else None
            classification = F.binary_cross_entropy_with_logits(logit, label, pos_weight=weight)
        if not self.has_aux_tscore:
            return {"loss": classification}
        tscore_loss = masked_tscore_loss(out["tscore"].float(), batch["tscore"].float())
        return {
            "loss": classification + self.config.aux_tscore_weight * tscore_loss,
            "classification_loss": classification,
            "tscore_loss": tscore_loss,
        }

    def _shared_step(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        out = self(batch)
        losses = self.compute_losses(out, batch)
        batch_size = len(batch["label"])
        on_step = split == "train"
        for name, value in losses.items():
            self.log(
                f"{split}/{name}",
                value,
                on_step=on_step,
                on_epoch=True,
                prog_bar=name == "loss",
                sync_dist=True,
                batch_size=batch_size,
                add_dataloader_idx=False,
            )

        probability = torch.sigmoid(out["logit"].detach().float())
        metrics = self.metrics[f"split_{split}"]
        metrics.update(probability, batch["label"].long())
        self.log_dict(
            metrics, on_step=False, on_epoch=True, batch_size=batch_size, add_dataloader_idx=False
        )
        if self.has_aux_tscore:
            self._update_tscore_mae(split, out["tscore"].detach().float(), batch["tscore"])
        return losses["loss"]

    def _update_tscore_mae(self, split: str, prediction: torch.Tensor, tscore: torch.Tensor):
        known = torch.isfinite(tscore)
        mae = self.tscore_mae[f"split_{split}"]
        mae.update(prediction[known], tscore[known].float())
        self.log(
            f"{split}/tscore_mae",
            mae,
            on_step=False,
            on_epoch=True,
            batch_size=len(tscore),
            add_dataloader_idx=False,
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0):
        splits = self.config.test_splits
        if dataloader_idx >= len(splits):
            raise IndexError(f"test dataloader {dataloader_idx} has no name; test_splits={splits}")
        return self._shared_step(batch, splits[dataloader_idx])

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0):
        """``{"study_id", "probability", ["probability_uncorrected"], ["label"],
        ["tscore_pred"], ["deep_features"]}``; ``probability`` is prior-shift corrected."""
        features = self.head_features(batch)
        out = self.head(features)
        logit = out["logit"].float()
        result: dict[str, Any] = {
            "study_id": list(batch["study_id"]),
            "probability": torch.sigmoid(logit - self.logit_shift).cpu(),
        }
        if self.logit_shift:
            result["probability_uncorrected"] = torch.sigmoid(logit).cpu()
        if "label" in batch:
            result["label"] = batch["label"].float().cpu()
        if "tscore" in out:
            result["tscore_pred"] = out["tscore"].float().cpu()
        if self.return_deep_features and "deep" in features:
            result["deep_features"] = features["deep"].float().cpu()
        return result

    # ------------------------------------------------------------------ optimisation

    def configure_optimizers(self):
        cfg = self.config
        # No weight decay on biases and normalisation weights (1-D tensors), as is usual.
        decay, no_decay = [], []
        for parameter in self.parameters():
            if parameter.requires_grad:
                (decay if parameter.ndim >= 2 else no_decay).append(parameter)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
        )
        if cfg.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=0.5, patience=cfg.plateau_patience
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": "val/auc", "interval": "epoch"},
            }
        if cfg.scheduler == "none" and cfg.warmup_epochs == 0:
            return optimizer

        total_steps, warmup_steps = self._schedule_steps()
        if cfg.scheduler == "onecycle":
            pct_start = warmup_steps / total_steps if warmup_steps else 0.3
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=cfg.lr, total_steps=total_steps, pct_start=pct_start
            )
        else:
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer,
                _warmup_cosine(
                    total_steps, warmup_steps, cfg.min_lr_ratio, cosine=cfg.scheduler == "cosine"
                ),
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _schedule_steps(self) -> tuple[int, int]:
        """Optimiser steps of the whole fit and of the warm-up, from the Trainer."""
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total <= 0:
            raise ValueError(
                f"scheduler={self.config.scheduler!r} needs a bounded fit "
                "(trainer.max_epochs or max_steps)"
            )
        # estimated_stepping_batches has set num_training_batches up.
        per_epoch = self.trainer.num_training_batches / self.trainer.accumulate_grad_batches
        if not math.isfinite(per_epoch):
            per_epoch = total / max(1, self.trainer.max_epochs or 1)
        warmup = min(int(round(self.config.warmup_epochs * per_epoch)), int(total) - 1)
        return int(total), max(0, warmup)


def _warmup_cosine(total: int, warmup: int, floor: float, cosine: bool):
    """LR multiplier per step: linear warm-up, then cosine decay to ``floor`` (or constant)."""

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier
