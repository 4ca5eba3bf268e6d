"""Clutter a segmenter must ignore: collimation, lead side markers, burned-in text, acetabular
walls and soft-tissue contours. Checked on a few tiny-preset studies and on frames built at
0.3 and 1.0 mm: drawn where planned, clear of the femur masks and reference ROIs, identical at
every spacing and on every run, independent of bone status, masks untouched."""

from __future__ import annotations

import numpy as np
import pytest

from osteo.data.synthetic import render as render_module
from osteo.data.synthetic import render_study, sample_cohort_table
from osteo.data.synthetic.anatomy import (
    PixelFrame,
    build_femur,
    build_frame,
    reference_geometry,
)
from osteo.data.synthetic.bone import trabecular_appearance
from osteo.data.synthetic.clutter import (
    Collimation,
    StudyClutter,
    femur_keepout,
    marker_attenuation,
    plan_clutter,
    text_coverage,
    to_patient,
)
from osteo.data.synthetic.femur import medial_cortex_mm, render_femur
from osteo.data.synthetic.font import GLYPHS, glyph_coverage
from osteo.data.synthetic.pelvis import _acetabular_walls
from osteo.data.synthetic.soft_tissue import render_soft_tissue

SIDES = ("right", "left")
FIELD_MM = (360.0, 432.0)  # a whole number of pixels at both test spacings


@pytest.fixture(scope="module")
def table():
    return sample_cohort_table("tiny", seed=0)


def _cue(row, name: str, side: str) -> float:
    """A bone cue for one hip (v2 tables carry ``{cue}_{side}``, v1 tables one value)."""
    return float(row[f"{name}_{side}"] if f"{name}_{side}" in row else row[name])


def _femurs_and_mask(row, frame: PixelFrame):
    """The femur label map and reference geometry exactly as the renderer draws them."""
    femurs = {side: build_femur(row, side) for side in SIDES}
    mask = np.zeros(frame.shape, dtype=np.uint8)
    cortex = {}
    rng = np.random.default_rng(0)
    for label, side in enumerate(SIDES, start=1):
        cti, calcar = _cue(row, "cti", side), _cue(row, "calcar_mm", side)
        look = trabecular_appearance(
            _cue(row, "trabecular_pattern", side),
            _cue(row, "trabecular_density", side),
            _cue(row, "hurst", side),
        )
        layers = render_femur(frame, femurs[side], cti, calcar, look, rng)
        mask[layers.box][layers.footprint] = label
        cortex[side] = medial_cortex_mm(femurs[side], cti, calcar, femurs[side].cortex_roi_t)
    return femurs, mask, reference_geometry(frame, femurs, cortex)


def _frame(row, spacing: float) -> PixelFrame:
    shape = (int(round(FIELD_MM[0] / spacing)), int(round(FIELD_MM[1] / spacing)))
    return build_frame(row, shape, spacing)


def _roi_mask(geometry, shape) -> np.ndarray:
    rois = np.zeros(shape, dtype=bool)
    for side in SIDES:
        for name in ("neck", "cortex"):
            r0, c0, r1, c1 = (
                int(geometry[f"{side}_{name}_roi_{k}"]) for k in ("r0", "c0", "r1", "c1")
            )
            rois[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)] = True
    return rois


def _paint(shape, found) -> np.ndarray:
    canvas = np.zeros(shape, dtype=np.float32)
    if found is not None:
        box, values = found
        canvas[box] = values
    return canvas


def test_font_glyphs_are_5x7_and_unknown_characters_are_named():
    assert {"R", "L", "A", "P", "0", "9", " "} <= set(GLYPHS)
    assert all(g.shape == (7, 5) for g in GLYPHS.values())
    assert all(g.any() for ch, g in GLYPHS.items() if ch != " ")
    x, y = np.meshgrid(np.arange(0.5, 5.0), np.arange(0.5, 7.0))
    assert np.array_equal(glyph_coverage(["L"], x, y, (0.0, 0.0), 1.0) > 0, GLYPHS["L"])
    with pytest.raises(ValueError, match="'#'"):
        glyph_coverage(["#1"], x, y, (0.0, 0.0), 1.0)


@pytest.mark.parametrize("spacing", [1.0, 0.3])
def test_clutter_stays_clear_of_the_femurs_and_reference_rois(table, spacing):
    rows = range(0, len(table), 4) if spacing == 1.0 else (0, 8)
    drawn = {"marker": 0, "text": 0, "blades": 0}
    for i in rows:
        row = table.iloc[i]
        frame = _frame(row, spacing)
        femurs, mask, geometry = _femurs_and_mask(row, frame)
        protected = (mask > 0) | _roi_mask(geometry, frame.shape)
        plan = plan_clutter(row, frame, femurs)
        # The keep-out really holds every femur pixel.
        rows_px, cols_px = np.nonzero(mask)
        centres = np.stack([(cols_px + 0.5) * spacing, (rows_px + 0.5) * spacing], axis=1)
        assert plan.keepout.clearance(to_patient(frame, centres)).max() < 0.0
        if plan.marker is not None:
            lead = _paint(frame.shape, marker_attenuation(frame, plan.marker))
            assert lead.max() > 5.0, "the marker's lead letter is drawn"
            assert not (protected & (lead > 0)).any(), f"row {i}: marker over a femur/ROI"
            drawn["marker"] += 1
        for block in plan.text:
            cover = _paint(frame.shape, text_coverage(frame, block))
            # A stroke is one font cell wide (0.8-1.3 mm): a pixel no wider than the cell is
            # at least half covered wherever the stroke falls (supersampled 3 x 3: steps of 1/9).
            assert cover.max() > 0.5 * min(1.0, block.cell_mm / spacing)
            assert not (protected & (cover > 0)).any(), f"row {i}: text {block.lines} over a femur"
            drawn["text"] += 1
        fluence = plan.fluence(frame)
        if fluence is not None:
            assert fluence.min() < 0.01, "blades block the beam"
            assert fluence[protected].min() > 0.999, f"row {i}: collimation cuts a femur/ROI"
            drawn["blades"] += 1
    if spacing == 1.0:
        assert min(drawn.values()) > 0, f"every kind of clutter drawn somewhere: {drawn}"


def _plan_summary(plan: StudyClutter) -> np.ndarray:
    parts = [np.array(plan.collimation.bounds), [plan.collimation.angle]]
    if plan.marker is not None:
        parts.append([*plan.marker.center, plan.marker.height_mm, plan.marker.angle])
    for block in plan.text:
        parts.append([*block.origin, block.cell_mm, len(block.lines)])
    return np.concatenate([np.asarray(p, dtype=float) for p in parts])


def test_plan_is_the_same_at_every_spacing_and_ignores_bone_status(table):
    for i in (1, 5, 9, 33):
        row = table.iloc[i]
        femurs = {side: build_femur(row, side) for side in SIDES}
        fine = plan_clutter(row, _frame(row, 0.3), femurs)
        coarse = plan_clutter(row, _frame(row, 1.0), femurs)
        assert fine.collimation.blades == coarse.collimation.blades
        assert (fine.marker is None) == (coarse.marker is None)
        assert [b.lines for b in fine.text] == [b.lines for b in coarse.text]
        assert np.allclose(_plan_summary(fine), _plan_summary(coarse), atol=1e-6)
        # Another bone status (every cue and T-score column changed): the same plan.
        other = row.copy()
        for name in other.index:
            if name.startswith(("tscore", "cti", "trabecular", "hurst", "calcar")):
                other[name] = -other[name] - 1.0
        femurs_other = {side: build_femur(other, side) for side in SIDES}
        again = plan_clutter(other, _frame(other, 1.0), femurs_other)
        assert np.array_equal(_plan_summary(again), _plan_summary(coarse))


def test_render_is_deterministic_and_masks_ignore_clutter(table, monkeypatch):
    row = table.iloc[0]
    first, second = render_study(row), render_study(row)
    assert np.array_equal(first.stored, second.stored)
    assert np.array_equal(first.mask, second.mask)

    def no_clutter(study, frame, femurs):
        w, h = frame.shape[1] * frame.spacing, frame.shape[0] * frame.spacing
        uncut = Collimation((w / 2, h / 2), 0.0, (-w, w, -h, h), ())
        return StudyClutter(femur_keepout(femurs), uncut, None, [])

    monkeypatch.setattr(render_module, "plan_clutter", no_clutter)
    clean = render_study(row)
    assert np.array_equal(clean.mask, first.mask)
    assert clean.geometry == first.geometry
    assert not np.array_equal(clean.stored, first.stored)


def test_clutter_shows_in_the_bone_bright_presentation(table):
    checked = {"marker": 0, "text": 0, "blades": 0}
    for i in (0, 1, 8, 12, 32, 39):  # site A (MONOCHROME2) and site B (MONOCHROME1)
        row = table.iloc[i]
        rendered = render_study(row)
        site = rendered.site
        top = 2**site.bits_stored - 1
        shown = rendered.stored.astype(np.float64)
        if site.photometric == "MONOCHROME1":
            shown = top - shown
        frame = build_frame(row, rendered.stored.shape, site.spacing_mm)
        femurs = {side: build_femur(row, side) for side in SIDES}
        plan = plan_clutter(row, frame, femurs)
        for block in plan.text:
            cover = _paint(frame.shape, text_coverage(frame, block))
            assert (shown[cover >= 0.999] == top).all(), "text burned at full brightness"
            checked["text"] += 1
        if plan.marker is not None:
            lead = _paint(frame.shape, marker_attenuation(frame, plan.marker))
            letter = lead > 0.9 * lead.max()
            c = np.array(plan.marker.center) / site.spacing_mm
            rr, cc = np.mgrid[: frame.shape[0], : frame.shape[1]]
            dist = np.hypot(cc + 0.5 - c[0], rr + 0.5 - c[1]) * site.spacing_mm
            ring = (dist > 1.5 * plan.marker.radius_mm) & (dist < 2.5 * plan.marker.radius_mm)
            assert np.median(shown[letter]) > np.median(shown[ring]) + 0.15 * top
            checked["marker"] += 1
        fluence = plan.fluence(frame)
        if fluence is not None:
            assert shown[fluence < 0.01].mean() > 0.9 * top, "collimated field unexposed"
            checked["blades"] += 1
    assert min(checked.values()) > 0, checked


def test_acetabular_walls_cross_the_femoral_head_outline():
    r_h = 22.5
    for sign in (-1.0, 1.0):
        head = np.array([sign * 88.0, 0.0])
        walls = _acetabular_walls(head, r_h, sign, np.array([0.0, 0.0, 1.0, 1.0]))
        angles = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
        outline = walls(
            np.float32(head[0] + r_h * np.cos(angles)), np.float32(head[1] + r_h * np.sin(angles))
        )
        # Bone on part of the outline, none on the rest: the walls' edges cross the outline.
        assert (outline > 1.0).mean() > 0.2 and (outline < 0.05).mean() > 0.2
        medial = walls(np.float32(head[0] - sign * 0.5 * r_h), np.float32(0.0))
        lateral = walls(np.float32(head[0] + sign * 0.7 * r_h), np.float32(0.0))
        assert medial > 1.0 and lateral < 0.05  # the walls cover the head's medial side


def test_soft_tissue_contours_follow_body_habitus(table):
    row = table.iloc[2].copy()
    frame = build_frame(row, (352, 432), 1.0)
    rng = np.random.default_rng
    slim, heavy = row.copy(), row.copy()
    slim["soft_tissue_mm"], heavy["soft_tissue_mm"] = 130.0, 300.0
    bottom = slice(330, 352)
    gap_slim = (render_soft_tissue(frame, slim, rng(1))[bottom] < 10.0).sum()
    gap_heavy = (render_soft_tissue(frame, heavy, rng(1))[bottom] < 10.0).sum()
    assert gap_slim > gap_heavy, "a slim patient's thighs part more below the perineum"
    one, two = render_soft_tissue(frame, row, rng(1)), render_soft_tissue(frame, row, rng(1))
    assert np.array_equal(one, two)
