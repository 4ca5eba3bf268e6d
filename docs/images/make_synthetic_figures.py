#!/usr/bin/env python
"""Make the example figures of docs/synthetic.md (run from the repository root).

    python docs/images/make_synthetic_figures.py [--with-spacing]

Studies come from the default preset with seed 0, i.e. the same images the main command uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from osteo.data.synthetic import BONE_CUES, SITES, render_study, sample_cohort_table  # noqa: E402

OUT = Path(__file__).resolve().parent
TILE = 360  # pixels per tile of the spacing figure (64 mm: 0.18 mm per screen pixel)


def display(rendered) -> np.ndarray:
    """8-bit, bone bright, whatever the site stores."""
    top = 2**rendered.site.bits_stored - 1
    pixels = rendered.stored.astype(np.float32)
    if rendered.site.photometric == "MONOCHROME1":
        pixels = top - pixels
    return np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8)


def save(array: np.ndarray, name: str, scale: int = 1, resample=Image.LANCZOS) -> None:
    image = Image.fromarray(array)
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), resample)
    image.save(OUT / name, optimize=True)
    print(OUT / name, f"{(OUT / name).stat().st_size / 1024:.0f} KB")


def overlay(rendered) -> np.ndarray:
    gray = display(rendered)
    rgb = np.stack([gray] * 3, axis=-1)
    mask = rendered.mask
    edge = np.zeros(mask.shape, dtype=bool)
    edge[1:, :] |= mask[1:, :] != mask[:-1, :]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    colours = {1: (255, 80, 80), 2: (80, 255, 80)}
    for label, colour in colours.items():
        near = edge & (
            (mask == label) | (np.roll(mask, 1, 0) == label) | (np.roll(mask, 1, 1) == label)
        )
        rgb[near] = colour
    g = rendered.geometry
    for side, colour in (("right", (255, 220, 0)), ("left", (0, 220, 255))):
        start = np.array([g[f"{side}_neck_axis_r0"], g[f"{side}_neck_axis_c0"]])
        end = np.array([g[f"{side}_neck_axis_r1"], g[f"{side}_neck_axis_c1"]])
        for t in np.linspace(0.0, 1.0, 80):
            r, c = np.round(start + t * (end - start)).astype(int)
            rgb[r, c] = (255, 0, 255)
        for roi in ("neck", "cortex"):
            r0, c0, r1, c1 = (int(g[f"{side}_{roi}_roi_{k}"]) for k in ("r0", "c0", "r1", "c1"))
            rgb[r0:r1, [c0, c1 - 1]] = colour
            rgb[[r0, r1 - 1], c0:c1] = colour
    return rgb


def expected_cues(tscore: float) -> dict[str, float]:
    """Both hips' cue values with their noise at zero: what a T-score looks like on average.

    The pelvis follows too (``pelvis_density`` 1 + 0.05 T, the render branch's stand-in for
    the latent model's systemic bone)."""
    cues = {
        f"{cue.name}_{side}": cue.at_t0 + cue.per_t * tscore
        for cue in BONE_CUES
        for side in ("right", "left")
    }
    return {**cues, "pelvis_density": 1.0 + 0.05 * tscore}


def hip_tile(study: dict, spacing_mm: float | None, size_mm: float, tile_px: int) -> np.ndarray:
    """The right head and neck (``size_mm`` square), resized to ``tile_px``."""
    rendered = render_study(study, spacing_mm)
    g, spacing = rendered.geometry, rendered.site.spacing_mm
    # Centred between the head centre and the neck ROI's centre.
    r = 0.5 * (g["right_neck_axis_r0"] + 0.5 * (g["right_neck_roi_r0"] + g["right_neck_roi_r1"]))
    c = 0.5 * (g["right_neck_axis_c0"] + 0.5 * (g["right_neck_roi_c0"] + g["right_neck_roi_c1"]))
    half = int(round(0.5 * size_mm / spacing))
    pixels = display(rendered)[int(r) - half : int(r) + half, int(c) - half : int(c) + half]
    # Archive tiles keep their pixels visible (nearest); native tiles are only resized.
    resample = Image.LANCZOS if spacing < 0.3 else Image.NEAREST
    return np.asarray(Image.fromarray(pixels).resize((tile_px, tile_px), resample))


def hip_spacing_figure(study: dict, tscores=(-4.0, -2.5, -1.0, 1.0)) -> None:
    """The right hip at four T-scores (columns); rows: site A native, A archive, B native,
    B archive. The same latent study at both sites (images/synthetic_hip_spacing.png)."""
    rows = []
    for site in ("A", "B"):
        native = SITES[site].native_spacing_mm
        for spacing in (native, None):
            tiles = [
                hip_tile({**study, **expected_cues(t), "site": site}, spacing, 64.0, TILE)
                for t in tscores
            ]
            gap = np.full((TILE, 4), 255, dtype=np.uint8)
            row = tiles[0]
            for tile in tiles[1:]:
                row = np.concatenate([row, gap, tile], axis=1)
            rows.append(row)
    gap = np.full((4, rows[0].shape[1]), 255, dtype=np.uint8)
    figure = rows[0]
    for row in rows[1:]:
        figure = np.concatenate([figure, gap, row], axis=0)
    save(figure, "synthetic_hip_spacing.png")


def main() -> None:
    table = sample_cohort_table("default", seed=0)
    site_a = table[(table["site"] == "A") & (table["sex"] == "F")].iloc[0].to_dict()
    site_b = table[table["site"] == "B"].iloc[2].to_dict()
    save(display(render_study(site_a)), "synthetic_site_a.png")
    save(display(render_study(site_b)), "synthetic_site_b.png")
    save(overlay(render_study(site_a)), "synthetic_mask_rois.png")

    # One patient, one acquisition, three bone states: only the bone cues change.
    crops, rois = [], []
    for tscore in (0.5, -1.5, -3.0):
        rendered = render_study({**site_a, **expected_cues(tscore)})
        g = rendered.geometry
        r_head, c_head = int(g["right_neck_axis_r0"]), int(g["right_neck_axis_c0"])
        pixels = display(rendered)
        mm = 1.0 / rendered.site.spacing_mm  # crop sizes are in mm
        crops.append(
            pixels[
                r_head - int(40 * mm) : r_head + int(130 * mm),
                c_head - int(90 * mm) : c_head + int(40 * mm),
            ]
        )
        r0, c0, r1, c1 = (int(g[f"right_neck_roi_{k}"]) for k in ("r0", "c0", "r1", "c1"))
        rois.append(rendered.stored[r0:r1, c0:c1].astype(np.float32))
    gap = np.full((crops[0].shape[0], 4), 255, dtype=np.uint8)
    save(
        np.concatenate([crops[0], gap, crops[1], gap, crops[2]], axis=1),
        "synthetic_bone_status.png",
        2,
    )
    # The three neck ROIs (12 mm) in one common grey window, one screen pixel block per pixel.
    lo, hi = np.percentile(np.stack(rois), (1, 99))
    rois = [np.clip((roi - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8) for roi in rois]
    gap = np.full((rois[0].shape[0], 1), 255, dtype=np.uint8)
    strip = np.concatenate([rois[0], gap, rois[1], gap, rois[2]], axis=1)
    save(strip, "synthetic_neck_roi.png", 10, Image.NEAREST)
    if "--with-spacing" in sys.argv:  # 8 native-resolution renders: ~30 s
        hip_spacing_figure(site_a)


if __name__ == "__main__":
    main()
