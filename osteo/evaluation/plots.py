"""ROC curves and reliability diagrams as PNG files.

Figures are built with ``matplotlib.figure.Figure`` and saved through the Agg canvas, never
through pyplot: no window is opened, no global backend is switched (which would surprise a
notebook that imports osteo), and no figure is left open in pyplot's registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from osteo.evaluation.calibration import reliability_bins
from osteo.evaluation.stats import roc_auc
from osteo.evaluation.thresholds import roc_curve

__all__ = ["ROCSeries", "ReaderPoints", "plot_reliability", "plot_roc"]


@dataclass
class ROCSeries:
    """One model's scores on one test set, and optionally its operating threshold."""

    label: str
    y_true: np.ndarray
    y_score: np.ndarray
    threshold: float | None = None


@dataclass
class ReaderPoints:
    """A reader's operating points: one (1 - specificity, sensitivity) per score cut-off."""

    label: str
    y_true: np.ndarray
    scores: np.ndarray
    cutoffs: Sequence[float] = field(default_factory=list)


def _new_figure(width: float, height: float):
    figure = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def plot_roc(
    series: Sequence[ROCSeries],
    path: str | Path,
    title: str,
    readers: Sequence[ReaderPoints] = (),
) -> Path:
    """ROC curves of several models on one test set (AUC in the legend), with each model's
    operating point at its threshold and each reader's points at every score cut-off."""
    figure = _new_figure(5.5, 5.2)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    for item in series:
        fpr, tpr, _ = roc_curve(item.y_true, item.y_score)
        (line,) = axes.plot(
            fpr,
            tpr,
            linewidth=1.8,
            label=f"{item.label} (AUC {roc_auc(item.y_true, item.y_score):.3f})",
        )
        if item.threshold is not None:
            called = item.y_score >= item.threshold
            positive = item.y_true == 1
            axes.plot(
                np.mean(called[~positive]),
                np.mean(called[positive]),
                marker="o",
                markersize=7,
                markerfacecolor="white",
                color=line.get_color(),
            )
    if any(item.threshold is not None for item in series):
        axes.plot(
            [],
            [],
            marker="o",
            markerfacecolor="white",
            color="grey",
            linestyle="none",
            label="operating point (val threshold)",
        )
    markers = "sD^vP*X"
    for index, reader in enumerate(readers):
        positive = reader.y_true == 1
        cutoffs = list(reader.cutoffs) or sorted(set(reader.scores.tolist()))[1:]
        # A reader "calls positive" at cut-off c when their score >= c (e.g. >= 4 of 5).
        fpr = [np.mean(reader.scores[~positive] >= c) for c in cutoffs]
        tpr = [np.mean(reader.scores[positive] >= c) for c in cutoffs]
        axes.plot(
            fpr,
            tpr,
            linestyle="--",
            linewidth=0.8,
            marker=markers[index % len(markers)],
            markersize=6,
            color="black",
            alpha=0.4 + 0.6 / (index + 1),
            label=f"{reader.label} (AUC {roc_auc(reader.y_true, reader.scores):.3f})",
        )
    axes.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        xlabel="1 - specificity",
        ylabel="sensitivity",
        title=title,
        aspect="equal",
    )
    axes.legend(loc="lower right", fontsize=7)
    return _save(figure, path)


def plot_reliability(
    panels: dict[str, Sequence[tuple[str, np.ndarray, np.ndarray]]],
    path: str | Path,
    n_bins: int = 10,
    strategy: str = "uniform",
) -> Path:
    """Reliability diagram: observed positive rate against mean predicted probability per bin.

    ``panels`` maps a panel title (a split) to ``(label, y_true, y_prob)`` series; each panel
    has a histogram of the predictions underneath, since sparse bins are noisy.
    """
    if not panels:
        raise ValueError("plot_reliability needs at least one panel")
    figure = _new_figure(4.2 * len(panels), 5.6)
    grid = figure.add_gridspec(2, len(panels), height_ratios=(3, 1))
    for column, (title, series) in enumerate(panels.items()):
        top = figure.add_subplot(grid[0, column])
        bottom = figure.add_subplot(grid[1, column], sharex=top)
        top.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
        for label, y_true, y_prob in series:
            bins = reliability_bins(y_true, y_prob, n_bins, strategy)
            (line,) = top.plot(
                bins.mean_predicted, bins.observed_rate, marker="o", markersize=4, label=label
            )
            bottom.hist(
                y_prob, bins=np.linspace(0, 1, n_bins + 1), histtype="step", color=line.get_color()
            )
        top.set(xlim=(0, 1), ylim=(-0.02, 1.02), ylabel="observed positive rate", title=title)
        top.legend(loc="upper left", fontsize=7)
        bottom.set(xlabel="predicted probability", ylabel="studies")
    return _save(figure, path)
