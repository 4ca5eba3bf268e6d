"""Precompute the radiomics feature store for a config (``tools/extract_radiomics.py``).

Runs the stages radiomics depends on (data, segmentation, ROI; each reused from its cache when
it can be), then fills the feature store with K worker processes and writes one feature table
per split to ``<run folder>/radiomics/<split>.pt``. A later ``tools/fit.py`` with the same
config finds every entry in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from osteo.classification.stage import select_studies
from osteo.config import save_config
from osteo.data.stage import run_data_stage
from osteo.pipeline.context import RunContext, StageRecord
from osteo.pipeline.distributed import finish_distributed, is_global_zero
from osteo.radiomics.stage import run_radiomics_stage
from osteo.roi.stage import run_roi_stage
from osteo.segmentation.stage import run_segmentation_stage

__all__ = ["ExtractionRun", "extract_radiomics"]


@dataclass
class ExtractionRun:
    run_dir: Path
    stages: list[StageRecord]
    split_files: dict[str, Path]
    failures: list  # osteo.radiomics.table.RoiFailure


def extract_radiomics(cfg: DictConfig) -> ExtractionRun:
    from osteo.radiomics.table import save_split_tables

    ctx = RunContext(cfg)
    try:
        if is_global_zero():
            save_config(cfg, ctx.run_dir / "config.yaml")
        data = run_data_stage(ctx)
        seg = run_segmentation_stage(ctx, data)
        rois = run_roi_stage(ctx, data, seg)
        study_ids, excluded = select_studies(data, seg)
        ids = [s for split_ids in study_ids.values() for s in split_ids]
        table = run_radiomics_stage(ctx, data, seg, rois, ids, needed=True)
        split_of = {s: split for split, split_ids in study_ids.items() for s in split_ids}
        files = {}
        if is_global_zero():
            ctx.write_study_table(excluded, "excluded.csv")
            files = save_split_tables(table, split_of, ctx.run_dir / "radiomics")
        return ExtractionRun(ctx.run_dir, ctx.records, files, table.failures)
    finally:
        ctx.close()
        finish_distributed()
