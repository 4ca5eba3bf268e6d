"""Decision curves, smoothed calibration curves and a Bland-Altman plot as PNG files (the Agg
canvas of plots.py: no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from osteo.evaluation.plots import _new_figure, _save

__all__ = ["plot_bland_altman", "plot_decision_curves", "plot_smoothed_calibration"]


def plot_decision_curves(curves: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """One panel per split: net benefit of the model, treat-all and treat-none."""
    figure = _new_figure(5.0 * max(len(curves), 1), 4.4)
    axes_list = np.atleast_1d(figure.subplots(1, max(len(curves), 1)))
    for axes, (title, curve) in zip(axes_list, curves.items(), strict=False):
        axes.plot(curve["threshold"], curve["net_benefit_model"], linewidth=1.8, label="model")
        for column, linestyle, color, label in (
            ("net_benefit_treat_all", "--", "grey", "treat all"),
            ("net_benefit_treat_none", ":", "black", "treat none"),
        ):
            axes.plot(
                curve["threshold"], curve[column], linestyle=linestyle, color=color, label=label
            )
        top = max(
            float(curve["net_benefit_model"].max()),
            float(curve["net_benefit_treat_all"].max()),
            0.01,
        )
        axes.set_ylim(-0.05 * top - 0.01, 1.1 * top)
        axes.set_xlabel("threshold probability")
        axes.set_ylabel("net benefit")
        axes.set_title(title)
        axes.legend(loc="upper right", fontsize=8)
    return _save(figure, path)


def plot_smoothed_calibration(curves: Mapping[str, dict], path: str | Path) -> Path:
    """One panel per split: lowess calibration curve with its bootstrap band and the diagonal."""
    figure = _new_figure(4.6 * max(len(curves), 1), 4.4)
    axes_list = np.atleast_1d(figure.subplots(1, max(len(curves), 1)))
    for axes, (title, curve) in zip(axes_list, curves.items(), strict=False):
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="ideal")
        if curve["grid"]:
            axes.plot(curve["grid"], curve["observed"], linewidth=1.8, label="lowess")
            if curve["band_low"] is not None:
                axes.fill_between(
                    curve["grid"],
                    curve["band_low"],
                    curve["band_high"],
                    alpha=0.25,
                    label="95% band",
                )
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("predicted probability")
        axes.set_ylabel("observed proportion")
        axes.set_title(title)
        axes.legend(loc="upper left", fontsize=8)
    return _save(figure, path)


def plot_bland_altman(measured, predicted, path: str | Path, title: str) -> Path:
    """Difference (predicted - measured) against the mean, with bias and 95% limits."""
    measured = np.asarray(measured, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    mean = (measured + predicted) / 2
    diff = predicted - measured
    bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    figure = _new_figure(5.2, 4.2)
    axes = figure.subplots()
    axes.scatter(mean, diff, s=8, alpha=0.6)
    axes.axhline(bias, color="black", label=f"bias {bias:.2f}")
    for limit in (bias - 1.96 * sd, bias + 1.96 * sd):
        axes.axhline(limit, color="grey", linestyle="--")
    axes.plot([], [], color="grey", linestyle="--", label="bias +/- 1.96 SD")
    axes.set_xlabel("mean of measured and predicted T-score")
    axes.set_ylabel("predicted - measured T-score")
    axes.set_title(title)
    axes.legend(fontsize=8)
    return _save(figure, path)
