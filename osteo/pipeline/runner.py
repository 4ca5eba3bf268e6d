"""Run the configured stages in order and write the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from osteo.classification.stage import (
    build_split_tensors,
    run_classifier_stage,
    select_studies,
)
from osteo.config import ConfigError, save_config
from osteo.constants import TRAINING_SPLITS
from osteo.data.stage import run_data_stage
from osteo.evaluation.stage import run_evaluation_stage
from osteo.pipeline.context import RunContext, StageRecord
from osteo.pipeline.distributed import (
    check_trainer_config,
    finish_distributed,
    is_global_zero,
    start_distributed,
    suppress_lightning_tips,
    wait_for_all_ranks,
)
from osteo.pipeline.errors import NoUsableStudiesError
from osteo.pipeline.plan import format_run_header, record_timings, stage_names
from osteo.pipeline.wandb_logging import log_run_results
from osteo.radiomics.stage import run_radiomics_stage
from osteo.roi.stage import run_roi_stage
from osteo.segmentation.stage import run_segmentation_stage

__all__ = ["RunResult", "run_pipeline", "check_config"]


@dataclass
class RunResult:
    run_dir: Path
    stages: list[StageRecord]
    metrics: dict | None = None
    pending: list[str] = field(default_factory=list)


def check_config(cfg: DictConfig):
    """Checks that need the model registries, before any stage runs or any file is written.

    Returns the checked classifier settings (a ``ClassifierConfig`` with its head parsed), which
    the run carries so that no later step checks ``model.head`` again."""
    from osteo.classification.hparams import classifier_config

    try:
        settings = classifier_config(OmegaConf.to_container(cfg.model, resolve=True))
    except ValueError as err:
        text = str(err)
        key = next(
            (k for k in ("head", "backbone", "combine", "weights_path", "pretrained") if k in text),
            "head",
        )
        raise ConfigError(f"Invalid value for config key 'model.{key}': {text}") from None
    if cfg.model.weights_path and not Path(cfg.model.weights_path).is_file():
        raise ConfigError(f"model.weights_path {cfg.model.weights_path} does not exist")
    check_trainer_config(cfg.trainer)
    return settings


def run_pipeline(cfg: DictConfig) -> RunResult:
    model_settings = check_config(cfg)
    suppress_lightning_tips()
    # Under torchrun/srun every rank joins the process group now, so the stages before
    # training know their rank (see docs/scaling.md).
    start_distributed(cfg.trainer)
    ctx = None
    try:
        ctx = RunContext(cfg)
        ctx.model_settings = model_settings
        ctx.plan = stage_names(cfg)
        if is_global_zero():
            # Before config.yaml is rewritten: the header compares it with this config.
            print(
                format_run_header(cfg, ctx.run_dir, ctx.cache_dir, model_settings.inputs),
                flush=True,
            )
            save_config(cfg, ctx.run_dir / "config.yaml")
        result = _run_stages(ctx)
    except BaseException:
        finish_distributed(wait=False)
        raise
    finally:
        if ctx is not None:
            ctx.close()
    finish_distributed()
    if is_global_zero():
        record_timings(cfg, ctx.cache_dir, ctx.records, _studies(ctx.records))
    return result


def _studies(records) -> int | None:
    data = next((r for r in records if r.name == "data"), None)
    return data.figures.get("studies") if data is not None else None


def _run_stages(ctx: RunContext) -> RunResult:
    cfg = ctx.cfg
    inputs = ctx.model_settings.inputs
    data = run_data_stage(ctx)
    seg = run_segmentation_stage(ctx, data)
    if cfg.task == "segmentation":
        return RunResult(ctx.run_dir, ctx.records)
    rois = run_roi_stage(ctx, data, seg)
    study_ids, excluded = select_studies(data, seg)
    if is_global_zero():
        ctx.write_study_table(excluded, "excluded.csv")
    _check_usable(study_ids, excluded, ctx.run_dir)
    all_ids = [s for ids in study_ids.values() for s in ids]
    texture = run_radiomics_stage(ctx, data, seg, rois, all_ids, needed="texture" in inputs)
    # Rank zero writes the split tensor files; the other ranks then find them in the cache.
    if is_global_zero():
        build_split_tensors(ctx, data, seg, rois, study_ids, texture, with_crops="deep" in inputs)
    wait_for_all_ranks()
    split_files, dataset_key = build_split_tensors(
        ctx, data, seg, rois, study_ids, texture, with_crops="deep" in inputs
    )
    texture_dim = len(texture.feature_names) if texture is not None else 0
    output = run_classifier_stage(
        ctx, data, split_files, dataset_key, texture_dim, segmentation_checkpoint=seg.checkpoint
    )
    if output is None:  # a non-zero DDP rank: rank zero evaluates
        return RunResult(ctx.run_dir, ctx.records)
    metrics = run_evaluation_stage(ctx)
    log_run_results(ctx, metrics)
    ctx.write_stages()
    return RunResult(ctx.run_dir, ctx.records, metrics=metrics)


def _check_usable(study_ids: dict[str, list[str]], excluded, run_dir: Path) -> None:
    """Training needs train and val studies with both femurs found; say why there are none."""
    empty = [split for split in TRAINING_SPLITS if not study_ids.get(split)]
    if not empty:
        return
    reasons = excluded[excluded["split"].isin(empty)]["reason"].value_counts()
    top = "; ".join(f"{n} x {reason}" for reason, n in reasons.head(3).items())
    raise NoUsableStudiesError(
        f"no usable {' or '.join(empty)} study: every one was excluded ({top}); see "
        f"{run_dir / 'excluded.csv'} and the segmentation settings (epochs, spatial size)"
    )
