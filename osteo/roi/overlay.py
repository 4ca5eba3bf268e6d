"""Quality-review images: the radiograph, femur contours and the four ROI boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from osteo.roi.geometry import RoiResult  # noqa: E402

__all__ = ["draw_overlay", "save_overlay", "save_contact_sheet"]

ROI_COLOURS = {"neck": "#ffd700", "cortex": "#00e5ff"}
FEMUR_COLOURS = {1: "#ff4d4d", 2: "#4dff4d"}


def _display_range(pixels: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(pixels, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1)


def draw_overlay(
    ax, pixels: np.ndarray, label_map: np.ndarray | None, rois: RoiResult | None, title: str = ""
) -> None:
    lo, hi = _display_range(pixels)
    ax.imshow(pixels, cmap="gray", vmin=lo, vmax=hi, interpolation="bilinear")
    if label_map is not None:
        for label, colour in FEMUR_COLOURS.items():
            if (label_map == label).any():
                ax.contour(label_map == label, levels=[0.5], colors=[colour], linewidths=0.8)
    if rois is not None:
        for side, hip in rois.hips.items():
            for name, (r0, c0, r1, c1) in hip.boxes.items():
                ax.add_patch(
                    Rectangle(
                        (c0 - 0.5, r0 - 0.5),
                        c1 - c0,
                        r1 - r0,
                        fill=False,
                        edgecolor=ROI_COLOURS[name],
                        linewidth=1.0,
                    )
                )
            if hip.neck_axis is not None:
                (ra, ca), (rb, cb) = hip.neck_axis
                ax.plot([ca, cb], [ra, rb], color="white", linewidth=0.6, linestyle="--")
            if hip.flags:
                r, c = hip.head_centre or (10, 10 if side == "right" else pixels.shape[1] - 60)
                ax.text(c, r, "!", color="red", fontsize=12, fontweight="bold")
    ax.set_title(title, fontsize=7, color="red" if rois is not None and not rois.ok else "black")
    ax.set_axis_off()


def _save_figure(fig, path: Path) -> Path:
    """Lay out, write and close ``fig`` (closed: pyplot keeps every open figure alive)."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_overlay(
    path: Path,
    pixels: np.ndarray,
    label_map: np.ndarray | None,
    rois: RoiResult | None,
    title: str = "",
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 6 * pixels.shape[0] / pixels.shape[1]), dpi=120)
    draw_overlay(ax, pixels, label_map, rois, title)
    return _save_figure(fig, path)


def save_contact_sheet(
    path: Path,
    items: Sequence[tuple[str, np.ndarray, np.ndarray | None, RoiResult | None]],
    columns: int = 6,
) -> Path:
    """One PNG with many studies: (title, pixels, label map, ROIs) each."""
    n = max(1, len(items))
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.2 * columns, 2.2 * rows), dpi=110, squeeze=False
    )
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (title, pixels, label_map, rois) in zip(axes.ravel(), items, strict=False):
        draw_overlay(ax, pixels, label_map, rois, title)
    return _save_figure(fig, path)
