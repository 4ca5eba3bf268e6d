"""W&B: offline by default (no account needed), no identifiers or images unless asked.

The logger records the resolved config, training curves, and at the end the summary table and
ROC plots produced by osteo.evaluation (one implementation for the console and W&B).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from osteo.pipeline.context import RunContext

__all__ = ["make_wandb_logger", "log_run_results"]


def make_wandb_logger(ctx: RunContext):
    from lightning.pytorch.loggers import WandbLogger

    cfg = ctx.cfg.logger
    # No network call, no login prompt, no console noise in offline mode.
    os.environ.setdefault("WANDB_SILENT", "true")
    if cfg.mode == "offline":
        os.environ.setdefault("WANDB_MODE", "offline")
    config = OmegaConf.to_container(ctx.cfg, resolve=True)
    if not cfg.log_identifiers:
        # Paths can name patients or studies (file names); W&B gets the folder name only.
        config["data"]["manifest"] = Path(config["data"]["manifest"]).parent.name + "/…"
    return WandbLogger(
        project=cfg.project,
        name=ctx.cfg.name,
        save_dir=str(ctx.run_dir),
        mode=cfg.mode,
        config=config,
        log_model=False,
    )


def log_run_results(ctx: RunContext, metrics: dict) -> None:
    """Final metrics, the summary table and the ROC/reliability PNGs to the same W&B run."""
    if ctx.cfg.logger.mode == "disabled":
        return
    import wandb

    from osteo.evaluation.report import summary_rows

    run = wandb.run
    if run is None:  # the classifier was reused: open the run again to add the results
        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(
            project=ctx.cfg.logger.project,
            name=ctx.cfg.name,
            dir=str(ctx.run_dir),
            mode=ctx.cfg.logger.mode,
            reinit=True,
        )
    rows = summary_rows(metrics)
    if rows:
        columns = list(rows[0])
        run.log(
            {"summary": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])}
        )
        for r in rows:
            run.summary[f"{r['split']}/auc_final"] = r["auc"]
    images = {p.stem: wandb.Image(str(p)) for p in sorted(ctx.run_dir.glob("*.png"))}
    if images:
        run.log(images)
    run.finish()
