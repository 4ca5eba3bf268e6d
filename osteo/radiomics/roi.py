"""ROI placement from a femur mask alone: femoral head, neck axis, shaft axis, two boxes per hip.

Each femur is first brought into one canonical orientation (the patient's left femur is
mirrored), so a single algorithm serves both hips: medial is +column, superior is -row.

- shaft axis: a line through the per-row centres of the lowest part of the mask;
- femoral head: the largest inscribed circle (distance-transform maximum) medial to the shaft
  axis in the upper part of the mask;
- neck axis: the ray from the head centre, lateral and downward, that runs through the middle
  of the neck (perpendicular chords centred on it); the neck box is centred on it at the
  middle of the neck and must lie in the trabecular bone, clear of the cortex;
- medial cortex box: on the medial edge of the shaft, a set distance below the lesser
  trochanter (the medial bulge below the neck), covering the cortex.

Sizes are in mm and become pixels with the image spacing. A mask that is empty, broken or
implausible gives a ``RoiResult`` with ``flags`` saying why; it never raises mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.signal import find_peaks

__all__ = [
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

SIDES = ("right", "left")  # the patient's sides
ROI_NAMES = ("neck", "cortex")
FEMUR_LABELS = {"right": 1, "left": 2}  # DESIGN.md: 1 = patient's right femur (image left)

Box = tuple[int, int, int, int]  # (row0, col0, row1, col1), half-open, full-image pixels


@dataclass(frozen=True)
class RoiSettings:
    neck_size_mm: float = 12.0
    cortex_size_mm: float = 12.0
    # The neck box must keep this distance from the bone edge (the cortex is ~1-3 mm thick).
    neck_cortex_margin_mm: float = 2.0
    # The neck box may shrink to this fraction of its size to fit a thin neck, then it fails.
    neck_min_fraction: float = 0.6
    # Centre of the cortex box below the lesser trochanter, along the shaft.
    cortex_below_lesser_trochanter_mm: float = 25.0
    # Depth of the cortex box's centre inside the medial bone edge: about mid-cortex, so the
    # box covers the whole cortex with some endosteal bone and periosteal soft tissue.
    cortex_depth_mm: float = 2.5
    min_femur_area_mm2: float = 1500.0
    head_radius_range_mm: tuple[float, float] = (12.0, 40.0)


@dataclass
class HipRois:
    side: str
    boxes: dict[str, Box] = field(default_factory=dict)
    head_centre: tuple[float, float] | None = None  # (row, col) full image
    head_radius_mm: float | None = None
    neck_axis: tuple[tuple[float, float], tuple[float, float]] | None = None  # head -> lateral
    shaft_axis: tuple[tuple[float, float], tuple[float, float]] | None = None  # top -> bottom
    flags: list[str] = field(default_factory=list)

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


def _chord(mask: np.ndarray, point: np.ndarray, direction: np.ndarray, limit: int):
    """Walk both ways from ``point`` along ``direction`` while inside ``mask``.

    Returns (length in steps, signed offset of the chord's middle from ``point``).
    """
    ends = []
    for sign in (1.0, -1.0):
        steps = 0
        while steps < limit:
            r, c = np.round(point + sign * (steps + 1) * direction).astype(int)
            if not (0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]) or not mask[r, c]:
                break
            steps += 1
        ends.append(steps)
    return ends[0] + ends[1] + 1, (ends[0] - ends[1]) / 2.0


def _place_canonical(mask: np.ndarray, spacing: tuple[float, float], s: RoiSettings) -> dict:
    """All geometry in the canonical frame (medial = +col). Returns a dict of results/flags."""
    flags: list[str] = []
    out: dict = {"flags": flags, "boxes": {}}
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

    # Femoral head: the most medial part of the upper femur in an AP view. The largest
    # inscribed circle near the most medial point is the head; searching the whole upper
    # femur would find the wide intertrochanteric region instead.
    distance = ndimage.distance_transform_edt(mask, sampling=(sr, sc))
    rr, cc = np.indices(mask.shape)
    upper = mask & (rr < top + 0.5 * height)
    medial_offset = np.where(upper, (cc - shaft_col(rr)) * sc, -np.inf)
    extreme = np.unravel_index(int(np.argmax(medial_offset)), mask.shape)
    if not np.isfinite(medial_offset[extreme]) or medial_offset[extreme] <= 0:
        flags.append("no femoral head medial to the shaft axis")
        return out
    # The head's inscribed circle touches that medial point: keep centres whose distance to
    # it equals their own inscribed radius (within 2 mm), and take the largest.
    to_extreme = np.hypot((rr - extreme[0]) * sr, (cc - extreme[1]) * sc)
    candidates = upper & (to_extreme <= distance + 2.0)
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
    for angle in np.deg2rad(np.arange(-20.0, 75.0, 2.0)):  # below horizontal, to lateral
        direction = np.array([np.sin(angle), -np.cos(angle)])
        normal = np.array([direction[1], -direction[0]])
        ts = np.linspace(1.0 * radius_px, 2.2 * radius_px, 9)
        chords = [_chord(mask, head_pt + t * direction, normal, limit) for t in ts]
        lengths = np.array([c[0] for c in chords], dtype=float)
        offsets = np.array([c[1] for c in chords], dtype=float)
        if (lengths <= 1).any():
            continue
        score = float(np.abs(offsets).mean())
        if best is None or score < best[0]:
            best = (score, direction, normal, ts, lengths, offsets)
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
    _, offset = _chord(mask, head_pt + mid * direction, normal, limit)
    centre = head_pt + mid * direction + offset * normal
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

    # Lesser trochanter: the first medial bulge of the edge below the femoral head (a local
    # maximum of the edge's distance from the shaft axis); the neck's inferior border above
    # it slopes away monotonically, the straight shaft below it is flat.
    search = np.arange(int(head_pt[0] + radius_px), top + int(0.75 * height))
    if len(search) < 5 or not all(mask[r].any() for r in search):
        flags.append("no medial shaft edge below the femoral head")
        return out
    medial_edge = np.array([np.flatnonzero(mask[r]).max() for r in search], dtype=float)
    bulge_mm = ndimage.uniform_filter1d(
        (medial_edge - shaft_col(search)) * sc, size=max(3, int(round(4.0 / sr)))
    )
    peaks, _ = find_peaks(bulge_mm, prominence=1.0)
    if len(peaks):
        lesser_row = int(search[peaks[0]])
    else:
        # No distinct bulge (a small or rotated-away trochanter): use where the edge meets
        # the shaft, i.e. where the bulge first falls to within 2 mm of its final level.
        level = float(np.median(bulge_mm[-max(3, len(bulge_mm) // 4) :]))
        lesser_row = int(search[int(np.argmax(bulge_mm <= level + 2.0))])
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
    result = _place_canonical(np.ascontiguousarray(canonical), spacing, settings)

    def point(p):
        return (p[0], width - 1 - p[1]) if mirrored else p

    hip = HipRois(side=side, flags=list(result["flags"]))
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
