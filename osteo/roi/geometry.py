"""ROI placement from a femur mask alone: femoral head, neck axis, shaft axis, two boxes per hip.

Each femur is first brought into one canonical orientation (the patient's left femur is
mirrored), so a single algorithm serves both hips: medial is +column, superior is -row.

- shaft axis: a line through the per-row centres of the lowest part of the mask;
- femoral head: the largest inscribed circle (distance-transform maximum) medial to the shaft
  axis in the upper part of the mask;
- neck axis: the ray from the head centre, lateral and downward, that runs through the middle
  of the neck (perpendicular chords across the neck centred on it; chords that run on into
  the greater trochanter are left out); the neck box is centred on it at the middle of the
  neck and must lie in the trabecular bone, clear of the cortex;
- medial cortex box: on the medial edge of the shaft, a set distance below the lesser
  trochanter (the medial bulge sought near its expected level below the neck-shaft
  junction; that level itself when the mask does not show the bulge, with a note),
  covering the cortex.

Sizes are in mm and become pixels with the image spacing. A mask that is empty, broken or
implausible gives a ``RoiResult`` with ``flags`` saying why; it never raises mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.signal import find_peaks

from osteo.config import RoiConfig
from osteo.constants import FEMUR_LABELS as MASK_LABELS

__all__ = [
    "ROI_ALGORITHM_VERSION",
    "RoiSettings",
    "HipRois",
    "RoiResult",
    "SIDES",
    "ROI_NAMES",
    "FEMUR_LABELS",
    "place_hip_rois",
    "place_rois",
    "box_iou",
    "box_inside_mask",
]

# Part of every ROI cache key: bump it when the placement rules change.
ROI_ALGORITHM_VERSION = 6
SIDES = ("right", "left")  # the patient's sides
ROI_NAMES = ("neck", "cortex")
FEMUR_LABELS = dict(MASK_LABELS)  # side -> label: 1 = patient's right femur (image left)

Box = tuple[int, int, int, int]  # (row0, col0, row1, col1), half-open, full-image pixels


# The config's ``roi`` section holds the defaults of the settings it exposes.
_CONFIG = RoiConfig()


@dataclass(frozen=True)
class RoiSettings:
    """Every ROI placement setting. Those the config's ``roi`` section names take its
    defaults (``osteo.config.RoiConfig``); the rest are calibration constants."""

    neck_size_mm: float = _CONFIG.neck_size_mm
    cortex_size_mm: float = _CONFIG.cortex_size_mm
    # The neck box must keep this distance from the bone edge (the cortex is ~1-3 mm thick).
    neck_cortex_margin_mm: float = _CONFIG.neck_cortex_margin_mm
    # The neck box may shrink to this fraction of its size to fit a thin neck, then it fails.
    neck_min_fraction: float = _CONFIG.neck_min_fraction
    # Centre of the cortex box below the lesser trochanter, along the shaft.
    cortex_below_lesser_trochanter_mm: float = _CONFIG.cortex_below_lesser_trochanter_mm
    # Depth of the cortex box's centre inside the medial bone edge: about mid-cortex, so the
    # box covers the whole cortex with some endosteal bone and periosteal soft tissue.
    cortex_depth_mm: float = _CONFIG.cortex_depth_mm
    # The lesser trochanter's expected level (its bulge's centroid), down the shaft axis from
    # the neck-shaft junction, for a femur whose neck waist is ``reference_neck_width_mm``
    # wide; the bulge is sought within the window around it. Calibrated on the synthetic
    # cohort's reference masks (docs/architecture.md); check it on your own data's masks.
    lesser_trochanter_below_junction_mm: float = _CONFIG.lesser_trochanter_below_junction_mm
    lesser_trochanter_window_mm: float = _CONFIG.lesser_trochanter_window_mm
    reference_neck_width_mm: float = 30.0
    min_femur_area_mm2: float = 1500.0
    head_radius_range_mm: tuple[float, float] = (12.0, 40.0)
    # Where along the neck (in head radii from the head centre) the axis is fitted: the
    # neck proper, before the greater trochanter widens its superior border.
    neck_search_span: tuple[float, float] = (0.8, 1.6)
    # Chords longer than this multiple of the narrowest have left the neck (see below).
    neck_chord_tolerance: float = 1.25


@dataclass
class HipRois:
    side: str
    boxes: dict[str, Box] = field(default_factory=dict)
    head_centre: tuple[float, float] | None = None  # (row, col) full image
    head_radius_mm: float | None = None
    neck_axis: tuple[tuple[float, float], tuple[float, float]] | None = None  # head -> lateral
    shaft_axis: tuple[tuple[float, float], tuple[float, float]] | None = None  # top -> bottom
    flags: list[str] = field(default_factory=list)  # why a box is missing or not trusted
    notes: list[str] = field(default_factory=list)  # boxes placed by a fallback rule

    @property
    def ok(self) -> bool:
        return not self.flags and set(self.boxes) == set(ROI_NAMES)


@dataclass
class RoiResult:
    hips: dict[str, HipRois]

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hips.values())

    @property
    def flags(self) -> list[str]:
        return [f"{side}: {flag}" for side, hip in self.hips.items() for flag in hip.flags]

    @property
    def notes(self) -> list[str]:
        return [f"{side}: {note}" for side, hip in self.hips.items() for note in hip.notes]

    def boxes(self) -> dict[tuple[str, str], Box]:
        return {(s, r): b for s, hip in self.hips.items() for r, b in hip.boxes.items()}


def box_iou(a: Box, b: Box) -> float:
    rows = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    cols = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = rows * cols
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_inside_mask(box: Box, mask: np.ndarray, min_fraction: float = 1.0) -> bool:
    r0, c0, r1, c1 = box
    if r0 < 0 or c0 < 0 or r1 > mask.shape[0] or c1 > mask.shape[1] or r1 <= r0 or c1 <= c0:
        return False
    return float(mask[r0:r1, c0:c1].mean()) >= min_fraction


def _square_box(centre: tuple[float, float], size_px: tuple[float, float]) -> Box:
    r, c = centre
    h, w = max(1, round(size_px[0])), max(1, round(size_px[1]))
    r0, c0 = int(round(r - h / 2)), int(round(c - w / 2))
    return (r0, c0, r0 + h, c0 + w)


def _chords(mask: np.ndarray, points: np.ndarray, direction: np.ndarray, limit: int):
    """For each point, walk both ways along ``direction`` while inside ``mask``.

    Vectorised over points (the neck search measures hundreds of chords per hip). Returns
    (lengths in steps, signed offsets of the chords' middles from the points).
    """
    steps = np.arange(1, limit + 1)
    out = []
    for sign in (1.0, -1.0):
        coords = np.rint(points[:, None, :] + sign * steps[None, :, None] * direction).astype(int)
        r, c = coords[..., 0], coords[..., 1]
        inside = (r >= 0) & (r < mask.shape[0]) & (c >= 0) & (c < mask.shape[1])
        values = np.zeros(r.shape, dtype=bool)
        values[inside] = mask[r[inside], c[inside]]
        out.append(np.cumprod(values, axis=1).sum(axis=1))  # steps before leaving the mask
    forward, backward = out
    return forward + backward + 1, (forward - backward) / 2.0


def _place_canonical(mask: np.ndarray, spacing: tuple[float, float], s: RoiSettings) -> dict:
    """All geometry in the canonical frame (medial = +col). Returns a dict of results/flags."""
    flags: list[str] = []
    notes: list[str] = []  # placed, but by a fallback a reviewer may want to check
    out: dict = {"flags": flags, "notes": notes, "boxes": {}}
    sr, sc = spacing
    pixel_area = sr * sc
    area_mm2 = float(mask.sum()) * pixel_area
    if area_mm2 == 0:
        flags.append("mask is empty")
        return out
    if area_mm2 < s.min_femur_area_mm2:
        flags.append(f"mask too small ({area_mm2:.0f} mm2 < {s.min_femur_area_mm2:.0f} mm2)")
        return out
    _, n_parts = ndimage.label(mask)
    if n_parts > 1:
        flags.append(f"mask is broken into {n_parts} parts")
        return out

    rows = np.flatnonzero(mask.any(axis=1))
    top, bottom = int(rows[0]), int(rows[-1])
    height = bottom - top + 1
    if height * sr < 60:
        flags.append(f"femur too short ({height * sr:.0f} mm); the shaft is not in the image")
        return out

    # Shaft axis from the lowest 30% of the femur: the diaphysis is a straight tube there.
    shaft_rows = np.arange(top + int(0.7 * height), bottom + 1)
    centres = np.array([np.flatnonzero(mask[r]).mean() for r in shaft_rows])
    slope, intercept = np.polyfit(shaft_rows, centres, 1)
    shaft_col = lambda r: slope * r + intercept  # noqa: E731 - a line, named for reading
    out["shaft_axis"] = (
        (float(top), float(shaft_col(top))),
        (float(bottom), float(shaft_col(bottom))),
    )

    # Femoral head: the largest inscribed circle of the upper femur that lies wholly medial
    # to the shaft axis. The wide intertrochanteric region has as large a circle, but it sits
    # on the shaft axis; thin spurs of a predicted mask (a sliver of acetabulum) have only
    # small circles. Both are ruled out without any tuning of thresholds.
    distance = ndimage.distance_transform_edt(mask, sampling=(sr, sc))
    rr, cc = np.indices(mask.shape)
    medial_mm = (cc - shaft_col(rr)) * sc
    candidates = mask & (rr < top + 0.5 * height) & (medial_mm >= distance)
    if not candidates.any():
        flags.append("no femoral head medial to the shaft axis")
        return out
    flat = np.where(candidates, distance, -1.0)
    head = np.unravel_index(int(np.argmax(flat)), mask.shape)
    radius_mm = float(distance[head])
    out["head_centre"] = (float(head[0]), float(head[1]))
    out["head_radius_mm"] = radius_mm
    lo, hi = s.head_radius_range_mm
    if not lo <= radius_mm <= hi:
        flags.append(f"implausible femoral head radius {radius_mm:.1f} mm (expected {lo}-{hi})")
        return out

    # Neck axis: the lateral-downward ray from the head centre best centred in the neck.
    head_pt = np.array(head, dtype=float)
    radius_px = radius_mm / sr
    limit = int(4 * radius_px)
    best = None
    ts = np.linspace(s.neck_search_span[0] * radius_px, s.neck_search_span[1] * radius_px, 17)
    for angle in np.deg2rad(np.arange(-20.0, 75.0, 1.0)):  # below horizontal, to lateral
        direction = np.array([np.sin(angle), -np.cos(angle)])
        normal = np.array([direction[1], -direction[0]])
        lengths, offsets = _chords(mask, head_pt + ts[:, None] * direction, normal, limit)
        if (lengths <= 1).any():
            continue
        # Only chords across the neck itself: towards its base a chord can run on into the
        # greater trochanter or the shaft (much longer, off-centre) and would tilt the axis.
        neck = lengths <= s.neck_chord_tolerance * lengths.min()
        if neck.sum() < 3:
            continue
        score = float(np.abs(offsets[neck]).mean())
        if best is None or score < best[0]:
            best = (score, direction, normal, ts[neck], lengths[neck].astype(float), offsets[neck])
    if best is None:
        flags.append("no neck found between the femoral head and the shaft")
        return out
    _, direction, normal, ts, lengths, offsets = best

    # Neck box at mid-neck: halfway between the head-neck junction (where the neck leaves
    # the head's circle, from the waist width) and the neck base (the neck axis meets the
    # shaft axis, less part of the shaft's radius), then centred across the neck.
    waist_half = float(lengths.min()) / 2.0
    head_neck = float(np.sqrt(max(radius_px**2 - waist_half**2, 0.0)))
    denominator = direction[1] - slope * direction[0]
    junction = (slope * head_pt[0] + intercept - head_pt[1]) / denominator if denominator else 0
    widths = np.array([np.count_nonzero(mask[r]) for r in shaft_rows], dtype=float)
    shaft_radius = float(np.median(widths)) / 2.0
    base = junction - 0.6 * shaft_radius
    if not head_neck < base:
        base = ts[-1]  # an implausible junction: fall back to the searched neck length
    mid = 0.5 * (head_neck + base)
    length, offset = _chords(mask, (head_pt + mid * direction)[None, :], normal, limit)
    # Centre across the neck, but only by a little, and only where the chord is still across
    # the neck: nearer the base it can run on into the greater trochanter, which is not neck.
    across_neck = length[0] <= s.neck_chord_tolerance * lengths.min()
    shift = float(np.clip(offset[0], -0.25 * waist_half, 0.25 * waist_half)) if across_neck else 0.0
    centre = head_pt + mid * direction + shift * normal
    out["neck_axis"] = (
        (float(head_pt[0]), float(head_pt[1])),
        (float(head_pt[0] + base * direction[0]), float(head_pt[1] + base * direction[1])),
    )
    side_px = np.array([s.neck_size_mm / sr, s.neck_size_mm / sc])
    inner = distance >= s.neck_cortex_margin_mm
    fraction = 1.0
    box = _square_box(tuple(centre), side_px)
    while not box_inside_mask(box, inner) and fraction > s.neck_min_fraction:
        fraction -= 0.05
        box = _square_box(tuple(centre), side_px * fraction)
    if not box_inside_mask(box, inner):
        flags.append(
            f"neck box of {s.neck_size_mm * s.neck_min_fraction:.1f} mm does not fit inside "
            f"the trabecular bone ({s.neck_cortex_margin_mm} mm from the cortex)"
        )
    else:
        out["boxes"]["neck"] = box
        if fraction < 1.0:
            out["neck_box_fraction"] = round(fraction, 2)

    # Lesser trochanter: a medial bulge of the edge below the femoral head (a local maximum
    # of the edge's distance from the shaft axis). A predicted mask can miss the trochanter
    # (thin, overlapped bone) or carry a bump elsewhere on the inferior neck, so the bulge is
    # sought only near where the anatomy puts it: a set distance down the shaft from the
    # neck-shaft junction, scaled by the femur's size (the neck's waist). Without a bulge
    # there, that expected level is used and the hip gets a note, not a failure.
    size_factor = (2.0 * waist_half * sr) / s.reference_neck_width_mm
    expected_mm = s.lesser_trochanter_below_junction_mm * size_factor
    junction_pt = head_pt + junction * direction
    row_per_mm = 1.0 / (sr * np.sqrt(1.0 + (slope * sc / sr) ** 2))  # along the shaft axis
    expected_row = junction_pt[0] + expected_mm * row_per_mm
    window = s.lesser_trochanter_window_mm * row_per_mm
    search = np.arange(int(head_pt[0] + radius_px), top + int(0.75 * height))
    if len(search) < 5 or not all(mask[r].any() for r in search):
        flags.append("no medial shaft edge below the femoral head")
        return out
    medial_edge = np.array([np.flatnonzero(mask[r]).max() for r in search], dtype=float)
    bulge_mm = ndimage.uniform_filter1d(
        (medial_edge - shaft_col(search)) * sc, size=max(3, int(round(4.0 / sr)))
    )
    peaks, properties = find_peaks(bulge_mm, prominence=1.0)
    near = np.abs(search[peaks] - expected_row) <= window if len(peaks) else np.zeros(0, bool)
    if near.any():
        # The most prominent bulge in the window; its centroid above its bases is steadier
        # than its single highest row.
        k = int(np.flatnonzero(near)[np.argmax(properties["prominences"][near])])
        lo, hi = int(properties["left_bases"][k]), int(properties["right_bases"][k])
        floor = max(bulge_mm[lo], bulge_mm[hi])
        excess = np.clip(bulge_mm[lo : hi + 1] - floor, 0.0, None)
        rows_in = search[lo : hi + 1]
        lesser_row = (
            int(round(float((rows_in * excess).sum() / excess.sum())))
            if excess.sum() > 0
            else int(search[peaks[k]])
        )
    else:
        lesser_row = int(round(expected_row))
        notes.append("lesser trochanter not seen on the mask; placed from the neck-shaft junction")
    out["lesser_trochanter_row"] = lesser_row
    row = int(round(lesser_row + s.cortex_below_lesser_trochanter_mm / sr))
    if row >= bottom or not mask[row].any():
        flags.append("the shaft ends before the medial cortex box")
        return out
    edge = int(np.flatnonzero(mask[row]).max())
    size = np.array([s.cortex_size_mm / sr, s.cortex_size_mm / sc])
    # The edge pixel's outer border is at edge + 0.5.
    cortex_centre = (float(row), float(edge + 0.5 - s.cortex_depth_mm / sc))
    box = _square_box(cortex_centre, size)
    if not box_inside_mask(box, mask, min_fraction=0.3):
        flags.append("medial cortex box is mostly outside the femur")
    else:
        out["boxes"]["cortex"] = box
    return out


def _shift(result: dict, dr: int, dc: int) -> dict:
    """Move a canonical result from crop coordinates back to the whole canonical image."""
    out = dict(result)
    out["boxes"] = {
        k: (b[0] + dr, b[1] + dc, b[2] + dr, b[3] + dc) for k, b in result["boxes"].items()
    }
    if "head_centre" in out:
        out["head_centre"] = (out["head_centre"][0] + dr, out["head_centre"][1] + dc)
    for key in ("neck_axis", "shaft_axis"):
        if key in out:
            out[key] = tuple((p[0] + dr, p[1] + dc) for p in out[key])
    if "lesser_trochanter_row" in out:
        out["lesser_trochanter_row"] += dr
    return out


def _unmirror_box(box: Box, width: int) -> Box:
    r0, c0, r1, c1 = box
    return (r0, width - c1, r1, width - c0)


def place_hip_rois(
    label_map: np.ndarray, side: str, spacing: tuple[float, float], settings: RoiSettings
) -> HipRois:
    """Place both boxes of one hip; coordinates in the full image."""
    mask = label_map == FEMUR_LABELS[side]
    width = mask.shape[1]
    mirrored = side == "left"  # the patient's left femur lies on the image right: mirror it
    canonical = mask[:, ::-1] if mirrored else mask
    # Work on the femur's bounding box (plus a margin): the same geometry, far fewer pixels.
    rows, cols = np.flatnonzero(canonical.any(axis=1)), np.flatnonzero(canonical.any(axis=0))
    r_off = max(0, int(rows[0]) - 8) if len(rows) else 0
    c_off = max(0, int(cols[0]) - 8) if len(cols) else 0
    r_end = int(rows[-1]) + 9 if len(rows) else canonical.shape[0]
    c_end = int(cols[-1]) + 9 if len(cols) else canonical.shape[1]
    crop = np.ascontiguousarray(canonical[r_off:r_end, c_off:c_end])
    result = _shift(_place_canonical(crop, spacing, settings), r_off, c_off)

    def point(p):
        return (p[0], width - 1 - p[1]) if mirrored else p

    hip = HipRois(side=side, flags=list(result["flags"]), notes=list(result["notes"]))
    for name, box in result["boxes"].items():
        hip.boxes[name] = _unmirror_box(box, width) if mirrored else box
    if "head_centre" in result:
        hip.head_centre = point(result["head_centre"])
        hip.head_radius_mm = result["head_radius_mm"]
    if "neck_axis" in result:
        hip.neck_axis = tuple(point(p) for p in result["neck_axis"])
    if "shaft_axis" in result:
        hip.shaft_axis = tuple(point(p) for p in result["shaft_axis"])
    for name, box in hip.boxes.items():
        if not box_inside_mask(box, np.ones_like(mask)):
            hip.flags.append(f"{name} box {box} leaves the image")
    missing = [n for n in ROI_NAMES if n not in hip.boxes]
    if missing and not hip.flags:
        hip.flags.append(f"no {' or '.join(missing)} box")
    return hip


def place_rois(
    label_map: np.ndarray, spacing: tuple[float, float], settings: RoiSettings | None = None
) -> RoiResult:
    """Both hips of one radiograph from its femur label map (0/1/2)."""
    settings = settings or RoiSettings()
    if label_map.ndim != 2:
        raise ValueError(f"label map must be 2D, got shape {label_map.shape}")
    return RoiResult({side: place_hip_rois(label_map, side, spacing, settings) for side in SIDES})
