"""Run the configured stages in order and write the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from osteo.config import save_config
from osteo.pipeline.context import RunContext, StageRecord
from osteo.pipeline.data_stage import run_data_stage
from osteo.pipeline.roi_stage import run_roi_stage
from osteo.pipeline.segmentation_stage import run_segmentation_stage
from osteo.pipeline.trainer import finish_distributed, is_global_zero

__all__ = ["RunResult", "run_pipeline", "PENDING_STAGES"]

# Stages of the design that this version does not run yet; the summary says so.
PENDING_STAGES = ("radiomics", "classifier", "evaluation")


@dataclass
class RunResult:
    run_dir: Path
    stages: list[StageRecord]
    pending: list[str] = field(default_factory=list)


def run_pipeline(cfg: DictConfig) -> RunResult:
    ctx = RunContext(cfg)
    if is_global_zero():
        save_config(cfg, ctx.run_dir / "config.yaml")
    try:
        data = run_data_stage(ctx)
        seg = run_segmentation_stage(ctx, data)
        if cfg.task == "segmentation":
            return RunResult(ctx.run_dir, ctx.records)
        run_roi_stage(ctx, data, seg)
        return RunResult(ctx.run_dir, ctx.records, pending=list(PENDING_STAGES))
    finally:
        finish_distributed()
