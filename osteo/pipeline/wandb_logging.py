"""W&B: offline by default (no account needed), no identifiers or images unless asked.

The logger records the resolved config, training curves, and at the end the summary table and
ROC plots produced by osteo.evaluation (one implementation for the console and W&B).
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf

from osteo.config import redacted_config
from osteo.pipeline.context import RunContext

__all__ = ["make_wandb_logger", "log_run_results", "wandb_settings"]


def wandb_settings(log_identifiers: bool):
    """What W&B records about the machine and the process.

    Unless identifiers were asked for: no console capture (log lines name image files), no
    code or git state, no system metadata (host name, working directory, command line with
    its paths, user name) and no system metrics.
    """
    import wandb

    if log_identifiers:
        return wandb.Settings(silent=True)
    return wandb.Settings(
        silent=True,
        console="off",
        save_code=False,
        disable_code=True,
        disable_git=True,
        disable_job_creation=True,
        x_disable_meta=True,
        x_disable_machine_info=True,
        x_disable_stats=True,
    )


def _config(ctx: RunContext) -> dict:
    if ctx.cfg.logger.log_identifiers:
        return OmegaConf.to_container(ctx.cfg, resolve=True)
    return redacted_config(ctx.cfg)  # every path-valued setting


def make_wandb_logger(ctx: RunContext):
    from lightning.pytorch.loggers import WandbLogger

    cfg = ctx.cfg.logger
    # No network call, no login prompt, no console noise in offline mode.
    os.environ.setdefault("WANDB_SILENT", "true")
    if cfg.mode == "offline":
        os.environ.setdefault("WANDB_MODE", "offline")
    return WandbLogger(
        project=cfg.project,
        name=ctx.cfg.name,
        save_dir=str(ctx.run_dir),
        mode=cfg.mode,
        config=_config(ctx),
        log_model=False,
        settings=wandb_settings(bool(cfg.log_identifiers)),
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
            config=_config(ctx),
            settings=wandb_settings(bool(ctx.cfg.logger.log_identifiers)),
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
