"""Stage 2: train (or load) the femur U-Net, then predict a mask for every study.

The trained model is cached under ``cache/segmentation/<key>/model.ckpt`` where the key
hashes the training images and masks, the segmentation and trainer settings and the library
versions; masks are cached per (checkpoint, image) by ``osteo.segmentation.masks``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.loggers import CSVLogger

from osteo.constants import FEMUR_LABELS
from osteo.data.assessability import mask_reasons
from osteo.data.masks import read_label_map
from osteo.data.stage import CohortData
from osteo.data.transforms import SEGMENTATION_INPUT_VERSION
from osteo.files import atomic_path, write_json_atomic
from osteo.hashing import digest
from osteo.pipeline.context import RunContext, launched_as_rank_zero
from osteo.pipeline.distributed import (
    build_trainer,
    distributed_rank_and_size,
    gather_from_ranks,
    is_global_zero,
    training_key_options,
)
from osteo.pipeline.resume import TransformRngStateCallback, resumable_callbacks
from osteo.segmentation.datamodule import SegmentationDataModule
from osteo.segmentation.masks import MaskCache, load_segmentation_model, predict_masks
from osteo.segmentation.module import FemurSegmentationModule

__all__ = ["SegmentationOutput", "run_segmentation_stage", "dice_per_femur"]


@dataclass
class SegmentationOutput:
    checkpoint: Path | None  # None when the masks come from the manifest
    masks: dict[str, Path]  # study_id -> predicted label map
    failures: dict[str, str]  # study_id -> reason


def _training_rows(data: CohortData, split: str, limit: int | None, seed: int) -> list[dict]:
    rows = data.rows(split)
    rows = rows[rows["mask_path"].notna()]
    if limit is not None and len(rows) > limit:
        rows = rows.sample(n=limit, random_state=seed)
    return rows.sort_values("study_id").to_dict("records")


def training_callbacks(work: Path) -> list:
    """The U-Net training's callbacks; the first keeps the best checkpoint by val Dice.

    ``last.ckpt`` is written after every epoch with the global and the augmentation RNG
    states: a killed training resumes where it stopped and ends as the uninterrupted one
    (see resume.py).
    """
    return [*resumable_callbacks(work, "seg/val_dice"), TransformRngStateCallback()]


def _train(ctx: RunContext, train_rows, val_rows, out_dir: Path) -> Path:
    seg = ctx.cfg.segmentation
    L.seed_everything(ctx.cfg.seed, workers=True, verbose=False)
    module = FemurSegmentationModule(
        network=seg.network,
        channels=list(seg.channels),
        num_res_units=seg.num_res_units,
        dropout=seg.dropout,
        lr=seg.lr,
        weight_decay=seg.weight_decay,
        max_epochs=seg.max_epochs,
        spacing_mm=seg.spacing_mm,
        spatial_size=list(seg.spatial_size),
    )
    datamodule = SegmentationDataModule(
        train_rows,
        val_rows,
        seg.spacing_mm,
        list(seg.spatial_size),
        seg.batch_size,
        seg.num_workers,
    )
    work = out_dir / "train"
    callbacks = training_callbacks(work)
    checkpoint = callbacks[0]
    # CSV curves beside the cached model (not in the checkpoint folder, which Lightning wants
    # empty): training_curves.png needs no W&B server.
    csv_logger = CSVLogger(save_dir=str(out_dir), name="", version="logs")
    trainer = build_trainer(
        ctx.cfg.trainer, seg.max_epochs, work, callbacks=callbacks, logger=csv_logger
    )
    last = work / "last.ckpt"
    resume = str(last) if ctx.cfg.resume and last.is_file() else None
    if (
        resume is None
        and work.exists()
        and distributed_rank_and_size()[1] == 1
        and launched_as_rank_zero()  # not a DDP child that reruns the command
    ):
        # A training killed earlier left its checkpoints; under the key's lock no one else
        # uses them, and a fresh training must not mistake them for its own.
        shutil.rmtree(work)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    final = out_dir / "model.ckpt"
    if is_global_zero():
        best = Path(checkpoint.best_model_path or last)
        with atomic_path(final, suffix=".ckpt") as temporary:
            shutil.copyfile(best, temporary)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return final


@contextlib.contextmanager
def _training_lock(folder: Path, key: str):
    """Hold ``folder/<key>.lock`` in rank zero's process. The other ranks of a DDP run train
    together with rank zero and must not wait for its lock (see launched_as_rank_zero)."""
    rank, _ = distributed_rank_and_size()
    if rank != 0 or not launched_as_rank_zero():
        yield
        return
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / f"{key}.lock")):
        yield


def _usable_checkpoint(path: Path) -> bool:
    """A cached model that loads; a truncated or corrupt one is a miss (retrained), with a
    warning, like every other cache entry."""
    if not path.is_file():
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "state_dict" not in state:
            raise ValueError("no state_dict")
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is a miss
        warnings.warn(
            f"cached segmentation model {path} is unreadable ({type(err).__name__}); "
            "training it again",
            UserWarning,
            stacklevel=2,
        )
        return False
    return True


def dice_per_femur(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    out = {}
    for name, label in FEMUR_LABELS:
        p, t = predicted == label, truth == label
        denominator = p.sum() + t.sum()
        out[name] = float(2.0 * (p & t).sum() / denominator) if denominator else 1.0
    return out


# Part of the Dice figures' cache key: bump it when the figures are computed differently.
DICE_FIGURES_VERSION = 1


def _dice_figures(ctx: RunContext, data: CohortData, masks: dict[str, Path]) -> dict:
    """Mean and minimum Dice per femur and split against the manifest's masks.

    Cached (``cache/dice/<key>.json``) by the digests of both masks of every study and its
    split: a warm run reads two small files per study to hash them instead of decoding both.
    """
    figures: dict = {}
    table = data.manifest[data.manifest["mask_path"].notna()]
    table = table[table["study_id"].isin(masks)]
    pairs = list(zip(table["split"], table["study_id"], table["mask_path"], strict=True))
    ctx.hashes.prime([masks[s] for _, s, _ in pairs], desc="hashing masks")
    ctx.hashes.prime([m for _, _, m in pairs], desc="hashing reference masks")
    key = digest(
        [(split, ctx.hashes.digest(masks[s]), ctx.hashes.digest(m)) for split, s, m in pairs],
        DICE_FIGURES_VERSION,
    )
    cache_path = ctx.cache_dir / "dice" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        return json.loads(cache_path.read_text())
    for split, part in table.groupby("split"):
        scores = [
            dice_per_femur(read_label_map(masks[s])[0], read_label_map(m)[0])
            for s, m in zip(part["study_id"], part["mask_path"], strict=True)
        ]
        if scores:
            right = np.array([s["right"] for s in scores])
            left = np.array([s["left"] for s in scores])
            figures[split] = {
                "n": len(scores),
                "dice_right_mean": round(float(right.mean()), 4),
                "dice_left_mean": round(float(left.mean()), 4),
                "dice_right_min": round(float(right.min()), 4),
                "dice_left_min": round(float(left.min()), 4),
            }
    if is_global_zero():
        write_json_atomic(cache_path, figures)
    return figures


def _manifest_masks(ctx: RunContext, data: CohortData, record) -> SegmentationOutput:
    table = data.manifest
    missing = table.loc[table["mask_path"].isna(), "study_id"].tolist()
    if missing:
        raise ValueError(
            f"segmentation.masks=manifest but {len(missing)} studies have no mask_path "
            f"(first: {missing[:5]}); add their masks or use segmentation.masks=predict"
        )
    masks = {s: Path(p) for s, p in zip(table["study_id"], table["mask_path"], strict=True)}
    failures = {}
    for study_id, path in masks.items():
        flags = mask_reasons(*read_label_map(path))
        if flags:
            failures[study_id] = _not_assessable(flags)
    record.status = "skipped"
    record.note = "masks from the manifest (segmentation.masks=manifest)"
    ctx.hashes.prime(masks.values(), desc="hashing masks")
    record.cache_key = digest(sorted((s, ctx.hashes.digest(p)) for s, p in masks.items()))
    record.figures = {
        "masks": len(masks),
        "failures": len(failures),
        "failure_reasons": _count_reasons(failures),
        "not_assessable": sum(r.startswith(NOT_ASSESSABLE_PREFIX) for r in failures.values()),
    }
    return SegmentationOutput(checkpoint=None, masks=masks, failures=failures)


def run_segmentation_stage(ctx: RunContext, data: CohortData) -> SegmentationOutput:
    seg = ctx.cfg.segmentation
    with ctx.stage("segmentation") as record:
        if seg.masks == "manifest":
            return _manifest_masks(ctx, data, record)
        if seg.checkpoint:
            checkpoint = Path(seg.checkpoint)
            if not checkpoint.is_file():
                raise FileNotFoundError(f"segmentation.checkpoint {checkpoint} does not exist")
            record.status = "reused"
            record.note = f"given checkpoint {checkpoint}"
            record.cache_key = ctx.hashes.digest(checkpoint)[:24]
        else:
            train_rows = _training_rows(data, "train", seg.max_train_studies, ctx.cfg.seed)
            val_rows = _training_rows(data, "val", seg.max_val_studies, ctx.cfg.seed)
            # Every image once, with a bar: mask prediction below keys on the same hashes.
            ctx.hashes.prime(data.manifest["image_path"], desc="hashing images")
            ctx.hashes.prime([r["mask_path"] for r in train_rows + val_rows], desc="hashing masks")
            hashed = ctx.hashes.digest
            key = digest(
                [
                    (r["study_id"], hashed(r["image_path"]), hashed(r["mask_path"]))
                    for r in train_rows + val_rows
                ],
                ctx.config_dict("segmentation"),
                # How an image becomes the network's input (anti-aliasing, resampling).
                SEGMENTATION_INPUT_VERSION,
                training_key_options(ctx.cfg.trainer),
                ctx.cfg.seed,
                ctx.versions,
            )
            record.cache_key = key
            out_dir = ctx.cache_dir / "segmentation" / key
            checkpoint = out_dir / "model.ckpt"
            # One training per key at a time: a second run (another W&B agent, a parallel
            # sweep) waits here, then reuses the model the first one published.
            with _training_lock(ctx.cache_dir / "segmentation", key):
                if _usable_checkpoint(checkpoint):
                    record.status = "reused"
                else:
                    start = time.perf_counter()
                    checkpoint = _train(ctx, train_rows, val_rows, out_dir)
                    record.status = "ran"
                    record.figures["train_seconds"] = round(time.perf_counter() - start, 1)
                    record.figures["train_studies"] = len(train_rows)
                    record.figures["val_studies"] = len(val_rows)

            curves = out_dir / "logs" / "metrics.csv"
            if curves.is_file() and is_global_zero():  # also when the model is reused
                target = ctx.run_dir / "logs" / "segmentation" / "metrics.csv"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(curves, target)

        model = load_segmentation_model(checkpoint)
        cache = MaskCache(ctx.cache_dir / "masks")
        ctx.hashes.prime(data.manifest["image_path"], desc="hashing images")
        studies = list(zip(data.manifest["study_id"], data.manifest["image_path"], strict=True))
        start = time.perf_counter()
        rank, world = distributed_rank_and_size()
        predicted_by_rank = []
        if world > 1:
            # Each rank predicts its share into the shared cache, then all read everything.
            share = predict_masks(
                model,
                studies[rank::world],
                cache,
                ctx.hashes.digest(checkpoint),
                batch_size=seg.predict_batch_size,
                progress=False,
                image_digest=ctx.hashes.digest,
            )
            predicted = sum(not p.cached for p in share if p.mask_path is not None)
            predicted_by_rank = gather_from_ranks(predicted)
        predictions = predict_masks(
            model,
            studies,
            cache,
            ctx.hashes.digest(checkpoint),
            batch_size=seg.predict_batch_size,
            progress=ctx.cfg.trainer.enable_progress_bar,
            image_digest=ctx.hashes.digest,
        )
        elapsed = time.perf_counter() - start
        masks = {p.study_id: p.mask_path for p in predictions if p.mask_path is not None}
        # Reasons go to excluded.csv and stages.json: the study's ids and paths are redacted
        # there (ctx.identifiers), here they are kept for the console.
        # Flags are the assessability gate's mask reasons (osteo.data.assessability).
        failures = {
            p.study_id: p.error or _not_assessable(p.flags)
            for p in predictions
            if p.mask_path is None or p.flags
        }
        n_new = sum(not p.cached for p in predictions if p.mask_path is not None)
        n_new += sum(predicted_by_rank)
        record.figures.update(
            {
                "masks": len(masks),
                # Masks other ranks (or this one) predicted just now are not cache hits.
                "mask_cache_hits": sum(p.cached for p in predictions) - sum(predicted_by_rank),
                "masks_predicted": n_new,
                "inference_seconds_per_image": round(elapsed / n_new, 4) if n_new else None,
                "failures": len(failures),
                "failure_reasons": _count_reasons(
                    {s: ctx.identifiers.message(m, s) for s, m in failures.items()}
                ),
                "not_assessable": sum(
                    r.startswith(NOT_ASSESSABLE_PREFIX) for r in failures.values()
                ),
                "dice": _dice_figures(ctx, data, masks),
            }
        )
        if predicted_by_rank:
            record.figures["predicted_by_rank"] = predicted_by_rank
        return SegmentationOutput(checkpoint=checkpoint, masks=masks, failures=failures)


# How excluded.csv and stages.json word a study the gate's mask check rejects (prediction
# records say "status": "not_assessable" with the same reasons).
NOT_ASSESSABLE_PREFIX = "not assessable: "


def _not_assessable(reasons: list[str]) -> str:
    return NOT_ASSESSABLE_PREFIX + "; ".join(reasons)


def _count_reasons(failures: dict[str, str]) -> dict[str, int]:
    return (
        pd.Series(list(failures.values()), dtype=object).value_counts().to_dict()
        if failures
        else {}
    )
