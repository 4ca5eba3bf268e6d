"""What real hip radiographs carry besides anatomy: collimation, a lead side marker, burned-in text.

A segmenter trained on clean renders learns that anything bright and sharp is bone. Real AP
pelvis films also show the collimator's shadow (a rectangle, often slightly rotated, with no
primary beam outside it: unexposed, white on the stored image), a radio-opaque lead "R" or "L"
marker placed by the radiographer on the patient's side, and annotation burned into the pixels
by the console (examination, position, technique, institution). All three are drawn here:

- planned in millimetres from the study's own ``render_seed`` (a dedicated random stream per
  part, so the plan is the same at every pixel spacing and does not disturb the anatomy's
  draws), independent of bone status;
- kept clear of both proximal femurs and the reference ROIs (a conservative keep-out made of
  capsules around the femur's solids), so the femur masks stay the femurs' exact silhouettes
  and never lie under a collimator blade, a marker or text;
- applied where each happens physically: the marker as attenuation before acquisition (blurred
  and noised like anatomy), the collimator as a multiplier on the primary fluence inside
  acquisition, the text on the stored, processed pixel values.

``plan_clutter`` makes the plan; ``StudyClutter`` applies it to any ``PixelFrame``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .anatomy import (
    CORTEX_ROI_MM,
    NECK_ROI_MM,
    FemurGeometry,
    PixelFrame,
    cortex_roi_center,
    unit,
)
from .font import glyph_coverage, text_size_cells
from .primitives import smoothstep

__all__ = [
    "Collimation",
    "Keepout",
    "Marker",
    "StudyClutter",
    "TextBlock",
    "burn_text",
    "clutter_rng",
    "collimation_fluence",
    "femur_keepout",
    "marker_attenuation",
    "plan_clutter",
]

# Lead at ~60 keV: mass attenuation 5.02 cm^2/g (NIST XCOM) x 11.35 g/cm^3 = 5.7 /mm.
LEAD_MU_PER_MM = 5.7
# PMMA (acrylic) marker holder: ~0.19 cm^2/g x 1.19 g/cm^3 at 60 keV (NIST XCOM).
ACRYLIC_MU_PER_MM = 0.023
# Collimator blades (several mm of lead) pass a negligible fraction of the primary beam.
BLADE_TRANSMISSION = 1e-3
PENUMBRA_MM = 1.5  # geometric unsharpness of the blade edge (focal spot x magnification)
KEEPOUT_MARGIN_MM = 6.0  # clearance between clutter and the femurs / reference ROIs
MAX_CORTEX_MM = 12.0  # thicker than any medial cortex the cues produce
MAX_INSET_MM = 60.0  # how far a blade may come in from the detector edge

# Probability that each blade pair's side shows on the image (top, bottom, image left, right).
BLADE_PROBABILITY = {"top": 0.4, "bottom": 0.4, "left": 0.35, "right": 0.35}
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
TEXT_PROBABILITY = 0.45  # per corner

_EXAMS = ("AP PELVIS", "PELVIS AP", "BOTH HIPS AP", "HIPS AP")
_POSITIONS = ("SUPINE", "STANDING", "PORTABLE", "TABLE", "AP")
_SITES = ("SYNTH HOSPITAL", "SYNTH HOSPITAL RADIOLOGY", "SYNTH CLINIC")


def clutter_rng(study: Mapping, part: str) -> np.random.Generator:
    """A random stream of its own for one part of the clutter, from the study's render seed.

    Separate streams keep each part's draws fixed whatever the other parts (or the anatomy)
    draw, so adding or changing clutter never changes the rest of the render."""
    return np.random.default_rng([int(study["render_seed"]), zlib.crc32(part.encode())])


# ---------------------------------------------------------------- frame helpers (detector mm)


def to_detector(frame: PixelFrame, points: np.ndarray) -> np.ndarray:
    """Patient mm (N, 2) -> detector mm (N, 2), x right and y down from the top-left corner."""
    points = np.atleast_2d(np.asarray(points, dtype=float))
    return points @ frame._matrix().T + frame.origin


def to_patient(frame: PixelFrame, points: np.ndarray) -> np.ndarray:
    points = np.atleast_2d(np.asarray(points, dtype=float))
    return (points - frame.origin) @ frame._matrix()


def _detector_size(frame: PixelFrame) -> tuple[float, float]:
    return frame.shape[1] * frame.spacing, frame.shape[0] * frame.spacing


def _pixel_box(frame: PixelFrame, corners_mm: np.ndarray) -> tuple[slice, slice] | None:
    """Pixels whose centres may fall inside the detector-mm polygon ``corners_mm``."""
    x, y = corners_mm[:, 0] / frame.spacing - 0.5, corners_mm[:, 1] / frame.spacing - 0.5
    r0, r1 = max(0, int(np.floor(y.min())) - 1), min(frame.shape[0], int(np.ceil(y.max())) + 2)
    c0, c1 = max(0, int(np.floor(x.min())) - 1), min(frame.shape[1], int(np.ceil(x.max())) + 2)
    if r0 >= r1 or c0 >= c1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _supersampled(frame: PixelFrame, box, feature_mm: float, fn) -> np.ndarray:
    """Mean of ``fn(x_mm, y_mm)`` over n x n sub-pixel samples (area coverage of thin strokes)."""
    n = int(np.clip(np.ceil(2.0 * frame.spacing / feature_mm), 1, 8))
    rows, cols = box
    total = np.zeros((rows.stop - rows.start, cols.stop - cols.start), dtype=np.float32)
    r = np.arange(rows.start, rows.stop, dtype=np.float64)
    c = np.arange(cols.start, cols.stop, dtype=np.float64)
    for i in range(n):
        for j in range(n):
            y = (r + (i + 0.5) / n) * frame.spacing
            x = (c + (j + 0.5) / n) * frame.spacing
            total += fn(x[None, :], y[:, None])
    return total / np.float32(n * n)


# ---------------------------------------------------------------- keep-out around the femurs


@dataclass(frozen=True)
class Keepout:
    """Capsules (segment a-b, radius; patient mm) that clutter must stay clear of."""

    segments: np.ndarray  # (K, 2, 2)
    radii: np.ndarray  # (K,)

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """Distance (mm) from each patient point (N, 2) to the nearest capsule (< 0 inside)."""
        p = np.atleast_2d(np.asarray(points, dtype=float))[:, None, :]
        a, b = self.segments[None, :, 0, :], self.segments[None, :, 1, :]
        ab = b - a
        t = np.clip(
            np.sum((p - a) * ab, axis=-1) / np.maximum(np.sum(ab * ab, axis=-1), 1e-9), 0, 1
        )
        d = np.linalg.norm(p - a - t[..., None] * ab, axis=-1) - self.radii[None, :]
        return d.min(axis=1)

    def outline(self, n: int = 24) -> np.ndarray:
        """Points on every capsule's end circles (the capsules are their convex hulls)."""
        angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
        ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        pts = [
            end + r * ring for seg, r in zip(self.segments, self.radii, strict=True) for end in seg
        ]
        return np.vstack(pts)


def femur_keepout(femurs: dict[str, FemurGeometry]) -> Keepout:
    """Capsules enclosing each femur's solids (head, neck, trochanters, the whole shaft down
    past the image) and both reference ROIs, with ``KEEPOUT_MARGIN_MM`` to spare.

    The sizes follow femur.py's solids with room to spare (the shaft's metaphyseal flare is at
    most 1.45 x its radius); tests check the keep-out against the rendered masks. Only the
    geometry enters, never a bone cue: the medial-cortex ROI is covered for any cortical
    thickness up to ``MAX_CORTEX_MM``, so the clutter cannot depend on bone status."""
    segments, radii = [], []

    def add(a, b, radius):
        segments.append([np.asarray(a, float), np.asarray(b, float)])
        radii.append(float(radius) + KEEPOUT_MARGIN_MM)

    for femur in femurs.values():
        s = femur.scale
        add(femur.head_center, femur.head_center, femur.head_radius)
        add(femur.head_center, femur.junction, femur.neck_base_radius)
        top = femur.junction - (0.55 * femur.head_radius + 14.0) * femur.distal
        add(top, femur.junction + 5000.0 * femur.distal, 1.5 * femur.shaft_radius)
        # Greater trochanter: ellipsoid 21 x 14.5 mm (x scale) beside the junction.
        gt = femur.junction - 0.75 * femur.shaft_radius * femur.medial - 15.0 * s * femur.distal
        lean = np.deg2rad(10.0)
        long_axis = unit(np.cos(lean) * femur.distal - np.sin(lean) * femur.medial)
        add(gt - 21.0 * s * long_axis, gt + 21.0 * s * long_axis, 14.5 * s)
        lt_t = femur.lesser_trochanter_t
        lt = femur.point(t_shaft=lt_t, r=float(femur.shaft_radius_at(lt_t)))
        add(lt, lt, 12.0 * s)
        neck = femur.point(s_neck=femur.neck_mid_s)
        add(neck, neck, NECK_ROI_MM / np.sqrt(2.0) + 1.0)
        cortex = cortex_roi_center(femur, 0.0)  # the medial surface at the ROI's level
        add(cortex, cortex, CORTEX_ROI_MM / np.sqrt(2.0) + 1.0 + 0.5 * MAX_CORTEX_MM)
    return Keepout(np.array(segments), np.array(radii))


# ---------------------------------------------------------------- collimation


@dataclass(frozen=True)
class Collimation:
    """The exposed field: a rectangle in detector mm, rotated by ``angle`` about ``center``.

    ``bounds`` = (u0, u1, v0, v1), the field's extent along the rotated axes relative to
    ``center``; a side that is not collimated lies beyond the detector."""

    center: tuple[float, float]
    angle: float  # radians
    bounds: tuple[float, float, float, float]
    blades: tuple[str, ...]  # the sides whose blade shows on the image

    def _uv(self, x, y):
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = x - self.center[0], y - self.center[1]
        return c * dx + s * dy, -s * dx + c * dy

    def contains(self, points_mm: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
        """Whether detector points (N, 2) are at least ``margin_mm`` inside the field."""
        p = np.atleast_2d(points_mm)
        u, v = self._uv(p[:, 0], p[:, 1])
        u0, u1, v0, v1 = self.bounds
        m = margin_mm
        return (u >= u0 + m) & (u <= u1 - m) & (v >= v0 + m) & (v <= v1 - m)

    def fluence(self, frame: PixelFrame) -> np.ndarray | None:
        """Fraction of the primary beam reaching each pixel (None: nothing collimated)."""
        if not self.blades:
            return None
        open_ = np.ones(frame.shape, dtype=np.float32)
        for blade in self.blades:
            self._apply_blade(open_, frame, blade)
        return (BLADE_TRANSMISSION + (1.0 - BLADE_TRANSMISSION) * open_).astype(np.float32)

    def _apply_blade(self, open_: np.ndarray, frame: PixelFrame, blade: str) -> None:
        """Multiply in one blade's shadow. Only the slab of rows (top/bottom) or columns
        (left/right) that the rotated edge and its penumbra cross is evaluated; beyond it the
        beam is simply blocked, so a native-resolution field costs a few hundred rows."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        u0, u1, v0, v1 = self.bounds
        cx, cy = self.center
        sp, h = frame.spacing, PENUMBRA_MM
        horizontal = blade in ("top", "bottom")
        n_along, n_across = (frame.shape[1], frame.shape[0]) if horizontal else frame.shape
        extent = n_along * sp
        level = {"top": v0, "bottom": v1, "left": u0, "right": u1}[blade]
        # The edge: v = level (top/bottom: y as a function of x) or u = level (x of y).
        ends = np.array([0.0, extent]) - (cx if horizontal else cy)
        if horizontal:
            across = cy + (level + s * ends) / c
        else:
            across = cx + (level - s * ends) / c
        lo = int(np.floor((across.min() - h / c) / sp - 1.0))
        hi = int(np.ceil((across.max() + h / c) / sp + 1.0))
        lo, hi = max(lo, 0), min(max(hi, 0), n_across)
        closed_before = blade in ("top", "left")
        blocked = slice(0, lo) if closed_before else slice(hi, n_across)
        if horizontal:
            open_[blocked, :] = 0.0
        else:
            open_[:, blocked] = 0.0
        if lo >= hi:
            return
        band = (np.arange(lo, hi, dtype=np.float32) + 0.5) * np.float32(sp)
        along = (np.arange(n_along, dtype=np.float32) + 0.5) * np.float32(sp)
        if horizontal:
            u, v = self._uv(along[None, :], band[:, None])
            coord, region = v, (slice(lo, hi), slice(None))
        else:
            u, v = self._uv(band[None, :], along[:, None])
            coord, region = u, (slice(None), slice(lo, hi))
        ramp = smoothstep(coord, level - h, level + h)
        open_[region] *= ramp if closed_before else 1.0 - ramp


def plan_collimation(frame: PixelFrame, keepout: Keepout, rng: np.random.Generator) -> Collimation:
    """Blades brought in on random sides, never over the keep-out (so never over a femur)."""
    width, height = _detector_size(frame)
    center = (width / 2.0, height / 2.0)
    angle = float(np.deg2rad(np.clip(rng.normal(0.0, 1.0), -3.0, 3.0)))
    draws = {side: (rng.random(), rng.random()) for side in BLADE_PROBABILITY}
    uncut = Collimation(center, angle, (0.0, 0.0, 0.0, 0.0), ())
    corners = np.array([[0.0, 0.0], [width, 0.0], [0.0, height], [width, height]])
    cu, cv = uncut._uv(corners[:, 0], corners[:, 1])
    keep = to_detector(frame, keepout.outline())
    ku, kv = uncut._uv(keep[:, 0], keep[:, 1])
    # Each side: the detector's extent beyond which nothing is seen, and the keep-out's.
    limits = {
        "left": (cu.min(), ku.min(), 1.0),
        "right": (cu.max(), ku.max(), -1.0),
        "top": (cv.min(), kv.min(), 1.0),
        "bottom": (cv.max(), kv.max(), -1.0),
    }
    bounds = {"left": cu.min() - 10.0, "right": cu.max() + 10.0}
    bounds.update({"top": cv.min() - 10.0, "bottom": cv.max() + 10.0})
    blades = []
    for side, (use, depth) in draws.items():
        edge, keep_edge, inward = limits[side]
        room = min(inward * (keep_edge - edge), MAX_INSET_MM)
        if use < BLADE_PROBABILITY[side] and room > 8.0:
            # The blade edge lands at least 3 mm in, so a visible band remains.
            bounds[side] = edge + inward * (3.0 + depth * (room - 3.0))
            blades.append(side)
    return Collimation(
        center,
        angle,
        (bounds["left"], bounds["right"], bounds["top"], bounds["bottom"]),
        tuple(blades),
    )


def collimation_fluence(frame: PixelFrame, collimation: Collimation) -> np.ndarray | None:
    """The primary-beam multiplier the renderer applies before blur and scatter."""
    return collimation.fluence(frame)


# ---------------------------------------------------------------- lead side marker


@dataclass(frozen=True)
class Marker:
    letter: str  # "R" (patient's right, image left) or "L"
    center: tuple[float, float]  # detector mm
    height_mm: float  # letter height
    angle: float  # radians, tilt on the detector
    lead_mm: float
    holder_mm: float  # acrylic holder thickness

    @property
    def cell_mm(self) -> float:
        return self.height_mm / 7.0

    @property
    def radius_mm(self) -> float:
        """Radius of a circle holding letter and holder."""
        return 0.5 * np.hypot(9.0, 11.0) * self.cell_mm


def plan_marker(
    frame: PixelFrame, keepout: Keepout, collimation: Collimation, rng: np.random.Generator
) -> Marker | None:
    """An "R" or "L" on its own side, inside the field, clear of both femurs.

    Candidates are drawn over the side's half of the pelvis and thigh, lateral positions
    beside the greater trochanter included; the first that fits is used."""
    right = rng.random() < 0.5
    sign = -1.0 if right else 1.0
    height = rng.uniform(12.0, 22.0)
    angle = np.deg2rad(rng.normal(0.0, 8.0))
    lead = rng.uniform(1.0, 2.0)
    holder = rng.uniform(3.0, 6.0)
    candidates = np.stack(
        [sign * rng.uniform(30.0, 215.0, 32), rng.uniform(-170.0, 170.0, 32)], axis=1
    )
    width, height_mm = _detector_size(frame)
    for point in candidates:
        marker = Marker(
            "R" if right else "L",
            tuple(to_detector(frame, point)[0]),
            height,
            float(angle),
            lead,
            holder,
        )
        c = np.array(marker.center)
        r = marker.radius_mm
        on_detector = r <= c[0] <= width - r and r <= c[1] <= height_mm - r
        if (
            on_detector
            and collimation.contains(c, margin_mm=r + 2.0)[0]
            and keepout.clearance(point)[0] >= r
        ):
            return marker
    return None


def marker_attenuation(
    frame: PixelFrame, marker: Marker
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """(pixel box, line-integrated attenuation) of the lead letter in its acrylic holder."""
    cell = marker.cell_mm
    half_w, half_h = 4.5 * cell, 5.5 * cell  # holder: the 5 x 7 letter plus two cells around
    c, s = np.cos(marker.angle), np.sin(marker.angle)
    local = np.array([[-half_w, -half_h], [half_w, -half_h], [-half_w, half_h], [half_w, half_h]])
    rot = np.array([[c, -s], [s, c]])
    corners = local @ rot.T + np.array(marker.center)
    box = _pixel_box(frame, corners)
    if box is None:
        return None
    # The letter's top-left corner: two cells in from the holder's.
    origin = np.array(marker.center) + rot @ np.array([-2.5 * cell, -3.5 * cell])

    def letter(x, y):
        return glyph_coverage([marker.letter], x, y, tuple(origin), cell, marker.angle)

    def holder(x, y):
        dx, dy = x - marker.center[0], y - marker.center[1]
        u, v = c * dx + s * dy, -s * dx + c * dy
        return ((np.abs(u) <= half_w) & (np.abs(v) <= half_h)).astype(np.float32)

    lead = _supersampled(frame, box, cell, letter)
    plastic = _supersampled(frame, box, cell, holder)
    return (
        box,
        LEAD_MU_PER_MM * marker.lead_mm * lead + ACRYLIC_MU_PER_MM * marker.holder_mm * plastic,
    )


# ---------------------------------------------------------------- burned-in text


@dataclass(frozen=True)
class TextBlock:
    lines: tuple[str, ...]
    origin: tuple[float, float]  # detector mm, top-left corner
    cell_mm: float

    def size_mm(self) -> tuple[float, float]:
        w, h = text_size_cells(list(self.lines))
        return w * self.cell_mm, h * self.cell_mm

    def corners(self) -> np.ndarray:
        w, h = self.size_mm()
        x0, y0 = self.origin
        return np.array([[x0, y0], [x0 + w, y0], [x0, y0 + h], [x0 + w, y0 + h]])


def _text_lines(rng: np.random.Generator) -> tuple[str, ...]:
    kv = int(rng.choice([70, 73, 75, 77, 80, 81, 85, 90]))
    mas = int(rng.integers(8, 41))
    pool = [
        str(rng.choice(_EXAMS)),
        str(rng.choice(_POSITIONS)),
        f"{kv} KV {mas} MAS",
        str(rng.choice(_SITES)),
    ]
    n = int(rng.integers(1, 4))
    picks = np.sort(rng.choice(len(pool), size=n, replace=False))
    return tuple(pool[k] for k in picks)


def plan_text(frame: PixelFrame, keepout: Keepout, rng: np.random.Generator) -> list[TextBlock]:
    """Blocks of 1-3 lines in random corners, each dropped if it would come near a femur."""
    width, height = _detector_size(frame)
    blocks = []
    for corner in CORNERS:
        use = rng.random() < TEXT_PROBABILITY
        lines = _text_lines(rng)
        cell = rng.uniform(0.8, 1.3)  # text 5.6-9.1 mm high
        margin_x, margin_y = rng.uniform(4.0, 15.0, 2)
        w, h = (n * cell for n in text_size_cells(list(lines)))
        x0 = margin_x if corner.endswith("left") else width - margin_x - w
        y0 = margin_y if corner.startswith("top") else height - margin_y - h
        block = TextBlock(lines, (float(x0), float(y0)), float(cell))
        if not use or x0 < 0.0 or y0 < 0.0:
            continue
        # Check the block on a 2 mm grid (the keep-out's margin is larger than that step).
        gx = np.linspace(x0, x0 + w, max(2, int(np.ceil(w / 2.0)) + 1))
        gy = np.linspace(y0, y0 + h, max(2, int(np.ceil(h / 2.0)) + 1))
        grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
        if keepout.clearance(to_patient(frame, grid)).min() >= 0.0:
            blocks.append(block)
    return blocks


def text_coverage(
    frame: PixelFrame, block: TextBlock
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    box = _pixel_box(frame, block.corners())
    if box is None:
        return None

    def strokes(x, y):
        return glyph_coverage(list(block.lines), x, y, block.origin, block.cell_mm)

    return box, _supersampled(frame, box, block.cell_mm, strokes)


def burn_text(
    stored: np.ndarray,
    frame: PixelFrame,
    blocks: list[TextBlock],
    bits_stored: int,
    photometric: str,
) -> np.ndarray:
    """Text at full brightness in the presentation (white on screen), as consoles burn it:
    the top stored value for MONOCHROME2, zero for MONOCHROME1; partial pixels blend."""
    if not blocks:
        return stored
    top = 2**bits_stored - 1
    bright = stored.astype(np.float32)
    if photometric == "MONOCHROME1":
        bright = top - bright
    for block in blocks:
        found = text_coverage(frame, block)
        if found is None:
            continue
        box, cover = found
        bright[box] = np.maximum(bright[box], cover * top)
    if photometric == "MONOCHROME1":
        bright = top - bright
    return np.rint(bright).astype(stored.dtype)


# ---------------------------------------------------------------- the plan for one study


@dataclass(frozen=True)
class StudyClutter:
    keepout: Keepout
    collimation: Collimation
    marker: Marker | None
    text: list[TextBlock] = field(default_factory=list)

    def add_attenuation(self, attenuation: np.ndarray, frame: PixelFrame) -> None:
        """Add the lead marker (and its holder) to a map of line-integrated attenuation."""
        if self.marker is None:
            return
        found = marker_attenuation(frame, self.marker)
        if found is not None:
            box, mu = found
            attenuation[box] += mu

    def fluence(self, frame: PixelFrame) -> np.ndarray | None:
        return self.collimation.fluence(frame)

    def burn(self, stored: np.ndarray, frame: PixelFrame, bits_stored: int, photometric: str):
        return burn_text(stored, frame, self.text, bits_stored, photometric)


def plan_clutter(
    study: Mapping, frame: PixelFrame, femurs: dict[str, FemurGeometry]
) -> StudyClutter:
    """Collimation, marker and text for one study. Depends on the frame only through its
    field of view and placement in mm, so every spacing gets the same plan, and on the femurs'
    geometry, never on a bone cue."""
    keepout = femur_keepout(femurs)
    collimation = plan_collimation(frame, keepout, clutter_rng(study, "collimation"))
    marker = plan_marker(frame, keepout, collimation, clutter_rng(study, "marker"))
    text = plan_text(frame, keepout, clutter_rng(study, "text"))
    return StudyClutter(keepout, collimation, marker, text)
