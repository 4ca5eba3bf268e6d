"""Stage 5: the classifier: split tensors, training, predictions for val and the test sets.

Which studies a run uses is decided before the head is known (a study needs a femur mask for
both hips), so every fusion head is trained and tested on the same studies and their AUCs can
be compared with paired tests. Studies left out are written to ``excluded.csv`` with the
reason. The split tensor files are cached by their content; the trained model is reused when
the run folder holds a model trained with the same key.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping
from tqdm.auto import tqdm

from osteo.classification.datamodule import HipDataModule
from osteo.classification.hips import CROP_ALGORITHM_VERSION
from osteo.classification.inputs import CLINICAL_NAMES, CROP_DTYPE, clinical_vector, hip_crops
from osteo.config import crop_geometry
from osteo.constants import SPLITS, TEST_SPLITS
from osteo.data.io import MissingSpacingWarning, read_radiograph
from osteo.data.manifest import hash_identifier
from osteo.data.masks import read_label_map
from osteo.data.stage import CohortData
from osteo.files import atomic_path, write_json_atomic, write_text_atomic
from osteo.hashing import digest, file_digest
from osteo.pipeline.context import RunContext
from osteo.pipeline.distributed import build_trainer, is_global_zero, training_key_options
from osteo.pipeline.resume import resumable_callbacks
from osteo.roi.stage import RoiOutput, roi_settings_from_config
from osteo.segmentation.stage import SegmentationOutput

__all__ = [
    "ClassifierOutput",
    "select_studies",
    "build_split_tensors",
    "run_classifier_stage",
    "classifier_settings",
    "write_inference_card",
]


@dataclass
class ClassifierOutput:
    checkpoint: Path
    predictions: pd.DataFrame


def select_studies(
    data: CohortData, seg: SegmentationOutput
) -> tuple[dict[str, list[str]], pd.DataFrame]:
    """Study ids per split that every head can use, and the excluded ones with reasons."""
    chosen: dict[str, list[str]] = {s: [] for s in SPLITS}
    excluded = []
    for row in data.manifest.itertuples(index=False):
        if row.split not in chosen:
            excluded.append((row.study_id, row.split, "patient also in a test set"))
        elif row.study_id not in seg.masks:
            excluded.append(
                (
                    row.study_id,
                    row.split,
                    f"no femur mask: {seg.failures.get(row.study_id, 'unknown')}",
                )
            )
        elif row.study_id in seg.failures:
            excluded.append((row.study_id, row.split, seg.failures[row.study_id]))
        else:
            chosen[row.split].append(row.study_id)
    return chosen, pd.DataFrame(excluded, columns=["study_id", "split", "reason"])


def _crops(row, seg: SegmentationOutput, rois: RoiOutput, crop_mm: float, size: int):
    """(right, left) hip crops of one manifest row, by the builder prediction uses too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingSpacingWarning)
        radiograph = read_radiograph(row.image_path)
    label_map, mask_spacing = read_label_map(seg.masks[row.study_id])
    crops = hip_crops(
        radiograph.pixels,
        radiograph.spacing or mask_spacing,
        label_map,
        rois.rois.get(row.study_id),
        crop_mm,
        size,
    )
    return crops["right"].pixels, crops["left"].pixels


def build_split_tensors(
    ctx: RunContext,
    data: CohortData,
    seg: SegmentationOutput,
    rois: RoiOutput,
    study_ids: dict[str, list[str]],
    texture_table,
    with_crops: bool,
) -> tuple[dict[str, Path], str]:
    """One tensor file per split under ``cache/datasets/<key>/``; returns paths and key."""
    train = ctx.cfg.train
    crop = crop_geometry(train)
    key = digest(
        {s: [(i, str(seg.masks[i].name)) for i in ids] for s, ids in study_ids.items()},
        file_digest(data.manifest_path),
        {
            "crop_spacing_mm": crop.spacing_mm,
            "crop_pixels": crop.pixels,
            "crop_algorithm": CROP_ALGORITHM_VERSION,
        }
        if with_crops
        else None,
        texture_table.feature_names if texture_table is not None else None,
        file_digest(ctx.cfg.radiomics.params) if texture_table is not None else None,
        ctx.versions,
    )
    folder = ctx.cache_dir / "datasets" / key
    paths = {split: folder / f"{split}.pt" for split in study_ids if study_ids[split]}
    if all(_usable_tensors(p) for p in paths.values()):
        return paths, key
    rows = data.manifest.set_index("study_id", drop=False)
    progress = ctx.cfg.trainer.enable_progress_bar
    for split, path in paths.items():
        ids = study_ids[split]
        part = rows.loc[ids]
        tensors = {
            "study_id": list(ids),
            "clinical": torch.from_numpy(
                np.stack([clinical_vector(r.age, r.sex, r.weight) for r in part.itertuples()])
            ),
            "clinical_names": list(CLINICAL_NAMES),
            "label": torch.tensor(part["label"].to_numpy(dtype=float), dtype=torch.float32),
            "tscore": torch.tensor(
                part["tscore"].to_numpy(dtype=float, na_value=np.nan), dtype=torch.float32
            ),
        }
        if texture_table is not None:
            selected = texture_table.select(ids)
            tensors["texture"] = selected.features
            tensors["texture_names"] = list(selected.feature_names)
        if with_crops:
            size = crop.pixels
            right = torch.empty(len(ids), 1, size, size, dtype=CROP_DTYPE)
            left = torch.empty_like(right)
            for i, row in enumerate(
                tqdm(list(part.itertuples()), desc=f"hip crops {split}", disable=not progress)
            ):
                r, lft = _crops(row, seg, rois, crop.span_mm, size)
                right[i, 0], left[i, 0] = torch.from_numpy(r), torch.from_numpy(lft)
            tensors["right"], tensors["left"] = right, left
        with atomic_path(path, suffix=".pt") as temporary:
            torch.save(tensors, temporary)
    return paths, key


def _load_reused(module_class, path: Path):
    """The run's trained model, or None (retrain, with a warning) when it does not load."""
    if not path.is_file():
        return None
    try:
        return module_class.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a truncated or corrupt checkpoint is a miss
        warnings.warn(
            f"{path} is unreadable ({type(err).__name__}); training the classifier again",
            UserWarning,
            stacklevel=2,
        )
        return None


def _usable_tensors(path: Path) -> bool:
    """A cached split tensor file that opens (memory-mapped: the check reads little); a
    truncated or corrupt one is a miss, rebuilt with a warning."""
    if not path.is_file():
        return False
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if not isinstance(data, dict) or "study_id" not in data:
            raise ValueError("not a split tensor file")
    except Exception as err:  # noqa: BLE001 - any unreadable entry is a miss
        warnings.warn(
            f"cached split tensors {path} are unreadable ({type(err).__name__}); rebuilding",
            UserWarning,
            stacklevel=2,
        )
        return False
    return True


def classifier_settings(ctx: RunContext, texture_dim: int, pos_weight: float | None):
    """The validated ClassifierConfig for this run: the config's ``model`` section as it is,
    plus what the data decides (texture width, class balance, the test splits' names)."""
    from osteo.classification.hparams import classifier_config

    balance = ctx.cfg.train.class_balance
    imbalance = {"pos_weight": "pos_weight", "focal": "focal"}.get(balance, "none")
    # The settings check_config made at start-up (head already parsed), else the config's.
    checked = ctx.model_settings
    return classifier_config(
        checked if checked is not None else ctx.config_dict("model")["model"],
        texture_dim=max(texture_dim, 1),
        imbalance=imbalance,
        pos_weight=pos_weight if imbalance == "pos_weight" else None,
        test_splits=list(TEST_SPLITS),
    )


def _make_logger(ctx: RunContext):
    from lightning.pytorch.loggers import CSVLogger

    # run_dir/logs/classifier/metrics.csv, beside W&B: training_curves.png needs no server.
    csv_logger = CSVLogger(save_dir=str(ctx.run_dir), name="logs", version="classifier")
    if ctx.cfg.logger.mode == "disabled":
        return [csv_logger]
    from osteo.pipeline.wandb_logging import make_wandb_logger

    return [make_wandb_logger(ctx), csv_logger]


def _predictions(
    module, datamodule: HipDataModule, data: CohortData, ctx: RunContext
) -> pd.DataFrame:
    """Predict val and the test sets on one device (no DDP padding of the last batch)."""
    trainer = L.Trainer(
        accelerator=ctx.cfg.trainer.accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        precision=ctx.cfg.trainer.precision,
        default_root_dir=str(ctx.run_dir),
    )
    names = datamodule.predict_split_names()
    outputs = trainer.predict(module, datamodule=datamodule)
    if len(names) == 1:
        outputs = [outputs]
    rows = data.manifest.set_index("study_id")
    frames = []
    for split, batches in zip(names, outputs, strict=True):
        for batch in batches:
            frame = pd.DataFrame(
                {
                    "study_id": list(batch["study_id"]),
                    "split": split,
                    "probability": batch["probability"].float().numpy(),
                    "label": batch["label"].numpy().astype(int),
                }
            )
            if "probability_uncorrected" in batch:  # before the prior-shift correction
                frame["probability_uncorrected"] = batch["probability_uncorrected"].numpy()
            if "tscore_pred" in batch:
                frame["tscore_pred"] = batch["tscore_pred"].float().numpy()
            frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    info = rows.loc[table["study_id"]]
    # Hashed patient ids let the bootstrap resample patients without carrying identifiers.
    table["patient_id_hash"] = [hash_identifier(p) for p in info["patient_id"]]
    table["sex"] = info["sex"].to_numpy()
    table["age"] = info["age"].to_numpy(dtype=float)
    # Site, date and DXA T-score feed the per-site calibration, the TRIPOD section and the
    # T-score head's error (evaluation); none identifies a patient.
    for column in ("site", "study_date", "tscore"):
        if column in info:
            table[column] = info[column].to_numpy()
    return table


def write_inference_card(ctx: RunContext, settings, segmentation_checkpoint: Path | None) -> Path:
    """``inference.json``: what prediction on new radiographs needs beyond the checkpoint.

    Paths in ``config.yaml`` are relative to wherever fit ran; this file holds absolute ones,
    with digests so a changed file is noticed, and the radiomics parameter text itself so the
    run still predicts when the repository's parameter file moves or changes.
    """
    params = Path(ctx.cfg.radiomics.params)
    uses_texture = "texture" in settings.inputs
    seg = Path(segmentation_checkpoint).resolve() if segmentation_checkpoint else None
    card = {
        "format": 1,
        "head": settings.head,
        "inputs": sorted(settings.inputs),
        "clinical_names": list(CLINICAL_NAMES),
        "clinical_missing": ctx.cfg.data.clinical_missing,
        # The crop's span and pixels (what prediction's hip_crops takes) and its spacing.
        "crop_mm": crop_geometry(ctx.cfg.train).span_mm,
        "crop_size": crop_geometry(ctx.cfg.train).pixels,
        "crop_spacing_mm": crop_geometry(ctx.cfg.train).spacing_mm,
        "roi": dataclasses.asdict(roi_settings_from_config(ctx.cfg)),
        "segmentation": {
            "masks": ctx.cfg.segmentation.masks,
            "checkpoint": str(seg) if seg else None,
            "checkpoint_digest": file_digest(seg) if seg else None,
        },
        "radiomics": {
            "params_path": str(params.resolve()) if uses_texture else None,
            "params_digest": file_digest(params) if uses_texture else None,
            "params_text": params.read_text(encoding="utf-8") if uses_texture else None,
        },
        "versions": ctx.versions,
    }
    return write_json_atomic(ctx.run_dir / "inference.json", card)


def run_classifier_stage(
    ctx: RunContext,
    data: CohortData,
    split_files: dict[str, Path],
    dataset_key: str,
    texture_dim: int,
    segmentation_checkpoint: Path | None = None,
) -> ClassifierOutput | None:
    """Train (or reuse) the model; returns predictions on rank zero, None on other ranks.

    ``segmentation_checkpoint`` (the U-Net that made the masks, None when they came from the
    manifest) is recorded in ``inference.json`` for ``tools/predict.py``.
    """
    from osteo.classification.module import OsteoporosisModule

    train = ctx.cfg.train
    with ctx.stage("classifier") as record:
        probe = classifier_settings(ctx, texture_dim, None)
        datamodule = HipDataModule(
            split_files,
            inputs=sorted(probe.inputs),
            batch_size=train.batch_size,
            num_workers=train.num_workers,
            class_balance="sampler" if train.class_balance == "sampler" else "pos_weight",
            clinical_missing=ctx.cfg.data.clinical_missing,
            seed=ctx.cfg.seed,
        )
        datamodule.setup("fit")
        # The settings were validated above; only the training split's class ratio is new.
        settings = dataclasses.replace(
            probe, pos_weight=datamodule.pos_weight if probe.imbalance == "pos_weight" else None
        )
        key = digest(
            dataset_key,
            ctx.config_dict("model", "train"),
            ctx.cfg.seed,
            training_key_options(ctx.cfg.trainer),
            ctx.versions,
        )
        record.cache_key = key
        ckpt_dir = ctx.run_dir / "checkpoints"
        final = ckpt_dir / "model.ckpt"
        key_file = ckpt_dir / "model.key"
        same_key = key_file.is_file() and key_file.read_text().strip() == key
        reused = _load_reused(OsteoporosisModule, final) if same_key else None
        if reused is not None:
            record.status = "reused"
            module = reused
        else:
            L.seed_everything(ctx.cfg.seed, workers=True, verbose=False)
            module = OsteoporosisModule(settings)
            # best.ckpt by val AUC; last.ckpt after every epoch, with the RNG states: a killed
            # run resumes where it stopped and ends as the uninterrupted run would.
            callbacks = resumable_callbacks(ckpt_dir, "val/auc")
            if train.early_stopping_patience > 0:
                callbacks.append(
                    EarlyStopping("val/auc", mode="max", patience=train.early_stopping_patience)
                )
            trainer = build_trainer(
                ctx.cfg.trainer,
                train.max_epochs,
                ctx.run_dir,
                callbacks=callbacks,
                logger=_make_logger(ctx),
            )
            last = ckpt_dir / "last.ckpt"
            # Beside, not inside, checkpoints/: Lightning warns about a non-empty checkpoint
            # folder, which a fresh training's folder must not be.
            training_key = ctx.run_dir / "training.key"
            # Resume only a training of the same settings and data: last.ckpt of another
            # config would silently mix two experiments.
            same = training_key.is_file() and training_key.read_text().strip() == key
            resume = str(last) if ctx.cfg.resume and last.is_file() and same else None
            if ctx.cfg.resume and last.is_file() and not same:
                record.note = "resume=true ignored: last.ckpt belongs to other settings"
            if is_global_zero():
                if resume is None:
                    # A fresh training: checkpoints of an earlier one would be mistaken for it.
                    for old in ckpt_dir.glob("*.ckpt"):
                        old.unlink()
                write_text_atomic(training_key, key + "\n")
            if resume:
                record.note = f"resumed from {last}"
            start = time.perf_counter()
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
            record.figures["train_seconds"] = round(time.perf_counter() - start, 1)
            record.figures["epochs"] = int(trainer.current_epoch)
            record.status = "ran"
            if not is_global_zero():
                return None
            best = Path(callbacks[0].best_model_path or last)
            with atomic_path(final, suffix=".ckpt") as temporary:
                temporary.write_bytes(best.read_bytes())
            write_text_atomic(key_file, key + "\n")
            module = OsteoporosisModule.load_from_checkpoint(
                final, map_location="cpu", weights_only=True
            )
        write_json_atomic(ctx.run_dir / "scalers.json", datamodule.state_dict())
        write_inference_card(ctx, settings, segmentation_checkpoint)
        predictions = _predictions(module, datamodule, data, ctx)
        ctx.write_study_table(predictions, "predictions.csv")
        record.figures.update(
            {
                "head": settings.head,
                "inputs": sorted(settings.inputs),
                "pos_weight": round(datamodule.pos_weight, 3),
                # Subtracted from every logit in predictions.csv (prior-shift correction).
                "prior_shift_logit": round(module.logit_shift, 6),
                "imputed": datamodule.imputed,
                "studies": {s: len(datamodule.splits[s]["study_id"]) for s in datamodule.splits},
            }
        )
        record.figures["hyperparameters"] = json.loads(
            json.dumps({k: v for k, v in vars(settings).items()}, default=str)
        )
        return ClassifierOutput(checkpoint=final, predictions=predictions)
