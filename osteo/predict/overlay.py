"""The explanation image of one study: radiograph, femur contours, ROI boxes, Grad-CAM per hip.

The heat maps are drawn where the CNN looked: each hip crop's Grad-CAM is placed over the
radiograph at the crop's position and size (the left one flipped back, since the CNN saw it
mirrored). Beside it, the two crops as the CNN saw them, with the same maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402  (Pillow: matplotlib's own PNG writer)

from osteo.classification.inputs import HipCrop  # noqa: E402
from osteo.roi.geometry import RoiResult  # noqa: E402
from osteo.roi.overlay import draw_overlay  # noqa: E402

__all__ = ["save_prediction_overlay", "heat_rgba"]

HEAT_CMAP = "inferno"
# Below this fraction of the peak a heat map is left transparent, so the bone stays visible.
HEAT_FLOOR = 0.15


def heat_rgba(cam: np.ndarray, max_alpha: float = 0.55) -> np.ndarray:
    """An RGBA image of a [0, 1] heat map whose opacity grows with the value."""
    rgba = plt.get_cmap(HEAT_CMAP)(np.clip(cam, 0.0, 1.0))
    rgba[..., 3] = np.where(cam < HEAT_FLOOR, 0.0, max_alpha * np.clip(cam, 0.0, 1.0))
    return rgba


def _draw_heat(ax, crop: HipCrop, cam: np.ndarray) -> None:
    shown = cam[:, ::-1] if crop.mirrored else cam  # back to the radiograph's orientation
    # Above the radiograph (zorder 0), below the ROI boxes (1) and femur contours (2).
    ax.imshow(heat_rgba(shown), extent=crop.extent(), interpolation="bilinear", zorder=0.5)
    left, right, bottom, top = crop.extent()
    ax.add_patch(
        Rectangle(
            (left, top),
            right - left,
            bottom - top,
            fill=False,
            edgecolor="white",
            linewidth=0.6,
            linestyle=":",
            zorder=0.6,
        )
    )


def _draw_crop(ax, crop: HipCrop, cam: np.ndarray | None, title: str) -> None:
    ax.imshow(crop.pixels, cmap="gray", interpolation="bilinear")
    if cam is not None:
        ax.imshow(heat_rgba(cam), interpolation="bilinear")
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()


LEGEND = (
    "heat: Grad-CAM of the Siamese CNN (both hips on one scale)   "
    "boxes: yellow neck ROI, cyan medial-cortex ROI   contours: red right femur, green left femur"
)


def save_prediction_overlay(
    path: Path,
    pixels: np.ndarray,
    label_map: np.ndarray | None,
    rois: RoiResult | None,
    crops: Mapping[str, HipCrop] | None,
    cams: Mapping[str, np.ndarray] | None,
    cam_share: Mapping[str, float] | None,
    title: str,
    flags: Sequence[str] = (),
    dpi: int = 90,
) -> Path:
    """Write the PNG and return its path."""
    cams, cam_share = cams or {}, cam_share or {}
    with_crops = bool(crops)
    height, width = pixels.shape
    main_w = 5.4
    fig = plt.figure(
        figsize=(main_w * (1.42 if with_crops else 1.0), main_w * height / width + 0.8),
        facecolor="white",
    )
    grid = fig.add_gridspec(
        2, 2 if with_crops else 1, width_ratios=[3, 1.25] if with_crops else [1]
    )
    ax = fig.add_subplot(grid[:, 0])
    draw_overlay(ax, pixels, label_map, rois, "")
    for side, crop in (crops or {}).items():
        if side in cams:
            _draw_heat(ax, crop, cams[side])
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    if with_crops:
        for row, side in enumerate(("right", "left")):
            label = "patient's right hip" if side == "right" else "patient's left hip, mirrored"
            if side in cam_share:
                label += f"\nGrad-CAM share {cam_share[side]:.0%}"
            _draw_crop(fig.add_subplot(grid[row, 1]), crops[side], cams.get(side), label)
    fig.suptitle(title, fontsize=8.5, y=0.985)
    notes = [LEGEND if cams else LEGEND.split("   ", 1)[1], *flags[:4]]
    fig.text(0.01, 0.01, "\n".join(notes), fontsize=5.5, va="bottom", color="#333333")
    fig.subplots_adjust(
        left=0.01, right=0.99, top=0.87, bottom=0.03 * len(notes) + 0.02, wspace=0.04, hspace=0.25
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.set_dpi(dpi)
    fig.canvas.draw()
    # RGB, not matplotlib's RGBA: the same picture in a quarter less space.
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    Image.fromarray(rgb).save(path, optimize=True)
    return path
