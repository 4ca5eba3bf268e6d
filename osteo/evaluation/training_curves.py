"""``training_curves.png`` from Lightning's CSVLogger files: no W&B server needed.

Each training stage writes a ``metrics.csv`` (one row per logged step or epoch, a column per
metric, blanks where a metric was not logged in that row). The figure has one row per stage:
losses per epoch on the left, the validation (and training) AUC of the classifier or the
validation Dice of the segmentation on the right.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from osteo.evaluation.plots import _new_figure, _save

__all__ = ["CSV_LOG_DIR", "epoch_table", "plot_training_curves"]

CSV_LOG_DIR = "logs"  # run_dir/logs/<stage>.csv


def epoch_table(path: str | Path) -> pd.DataFrame:
    """One row per epoch: the epoch-level values of every metric (last value of the epoch)."""
    table = pd.read_csv(path)
    if "epoch" not in table.columns:
        raise ValueError(f"{path}: no 'epoch' column; not a Lightning CSVLogger metrics.csv")
    table = table.drop(columns=[c for c in ("step",) if c in table.columns])
    return table.groupby("epoch", sort=True).last().reset_index()


def _pick(columns, *suffixes) -> list[str]:
    return [c for c in columns if any(c.endswith(s) for s in suffixes)]


def plot_training_curves(logs: Mapping[str, str | Path], path: str | Path) -> Path | None:
    """Plot each stage's ``{name: metrics.csv}``; None when no file exists."""
    tables = {name: epoch_table(p) for name, p in logs.items() if Path(p).is_file()}
    if not tables:
        return None
    figure = _new_figure(10.0, 3.6 * len(tables))
    axes = figure.subplots(len(tables), 2, squeeze=False)
    for row, (name, table) in enumerate(tables.items()):
        losses = [
            c
            for c in _pick(table.columns, "loss", "loss_epoch")
            if not c.endswith("_step") and table[c].notna().any()
        ]
        scores = [
            c
            for c in _pick(table.columns, "val/auc", "train/auc", "val_dice")
            if table[c].notna().any()
        ]
        for column in losses:
            values = table[["epoch", column]].dropna()
            axes[row, 0].plot(values["epoch"], values[column], marker=".", label=column)
        for column in scores:
            values = table[["epoch", column]].dropna()
            axes[row, 1].plot(values["epoch"], values[column], marker=".", label=column)
        axes[row, 0].set_title(f"{name}: loss per epoch")
        axes[row, 1].set_title(f"{name}: validation " + ("AUC" if "classifier" in name else "Dice"))
        for axis in axes[row]:
            axis.set_xlabel("epoch")
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=8)
    return _save(figure, path)
