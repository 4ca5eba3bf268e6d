"""Where everything is: the pixel frame, both proximal femurs and the pelvis, in millimetres.

Patient coordinates: origin midway between the femoral head centres, x towards the image
right (the patient's left), y caudal (down the image). The patient is rotated and shifted
within the detector; ``PixelFrame`` maps between the two. Femur construction follows the
usual radiographic description: head centre, neck axis at the neck-shaft angle to the
anatomical shaft axis, femoral offset = distance from head centre to the shaft axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .nuisance import SIDES
from .primitives import smoothstep

__all__ = [
    "CORTEX_ROI_MM",
    "NECK_ROI_MM",
    "FemurGeometry",
    "PelvisGeometry",
    "PixelFrame",
    "build_femur",
    "build_pelvis",
    "build_frame",
    "reference_geometry",
]

NECK_ROI_MM = 12.0  # side of the reference femoral-neck ROI (trabecular bone)
CORTEX_ROI_MM = 12.0  # side of the reference medial-cortex ROI
HEAD_HALF_DISTANCE_MM = 88.0  # half the distance between head centres at skeletal scale 1
HEAD_ROW_FRACTION = 0.52  # head centres at 52% of the height: crests to proximal shafts


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class PixelFrame:
    """Detector pixels <-> patient mm (a rotation about the patient origin, then a shift)."""

    shape: tuple[int, int]
    spacing: float
    rotation: float  # radians, positive = counter-clockwise on the displayed image
    origin: np.ndarray  # patient origin in detector mm (x, y from the top-left corner)

    def _matrix(self) -> np.ndarray:
        c, s = np.cos(self.rotation), np.sin(self.rotation)
        return np.array([[c, s], [-s, c]])  # y points down, so CCW on screen flips the sign

    def patient_grid(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """Patient x, y (mm, float32) of the centres of the pixels in ``rows`` x ``cols``."""
        r = (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5) * self.spacing
        c = (np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5) * self.spacing
        dx = c[None, :] - np.float32(self.origin[0])
        dy = r[:, None] - np.float32(self.origin[1])
        inv = self._matrix().T.astype(np.float32)
        x = inv[0, 0] * dx + inv[0, 1] * dy
        y = inv[1, 0] * dx + inv[1, 1] * dy
        return x, y

    def to_pixel(self, point: np.ndarray) -> np.ndarray:
        """(row, col) in continuous pixel indices (pixel centres at integers)."""
        x, y = self._matrix() @ np.asarray(point, dtype=float) + self.origin
        return np.array([y / self.spacing - 0.5, x / self.spacing - 0.5])

    def box(self, points: np.ndarray, margin_mm: float) -> tuple[slice, slice] | None:
        """The pixel rectangle that holds ``points`` (patient mm) plus a margin, clipped."""
        pix = np.array([self.to_pixel(p) for p in np.atleast_2d(points)])
        m = margin_mm / self.spacing
        r0 = max(0, int(np.floor(pix[:, 0].min() - m)))
        r1 = min(self.shape[0], int(np.ceil(pix[:, 0].max() + m)) + 1)
        c0 = max(0, int(np.floor(pix[:, 1].min() - m)))
        c1 = min(self.shape[1], int(np.ceil(pix[:, 1].max() + m)) + 1)
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def coarse(self, factor: int) -> PixelFrame:
        """The same field on a grid ``factor`` times coarser (block centres, see resample)."""
        shape = (-(-self.shape[0] // factor), -(-self.shape[1] // factor))
        return PixelFrame(shape, self.spacing * factor, self.rotation, self.origin)

    def full(self) -> tuple[slice, slice]:
        return slice(0, self.shape[0]), slice(0, self.shape[1])


def build_frame(
    row: Mapping,
    shape: tuple[int, int],
    spacing: float,
    field_of_view_mm: tuple[float, float] | None = None,
) -> PixelFrame:
    """The patient placed on the detector: centred on the field of view (mm, not the rounded
    pixel count, so the anatomy sits at the same mm at every spacing), then shifted."""
    height, width = field_of_view_mm or (shape[0] * spacing, shape[1] * spacing)
    origin = np.array(
        [
            width / 2.0 + float(row["shift_x_mm"]),
            HEAD_ROW_FRACTION * height + float(row["shift_y_mm"]),
        ]
    )
    return PixelFrame(shape, spacing, np.deg2rad(float(row["rotation_deg"])), origin)


@dataclass(frozen=True)
class FemurGeometry:
    """One proximal femur. Vectors are unit vectors in patient coordinates."""

    side: str
    head_center: np.ndarray
    head_radius: float
    medial: np.ndarray  # perpendicular to the shaft, towards the midline
    distal: np.ndarray  # along the shaft axis, downwards
    neck_dir: np.ndarray  # from the junction towards the head centre
    superior: np.ndarray  # perpendicular to the neck axis, upwards
    junction: np.ndarray  # where the neck axis meets the shaft axis
    neck_length: float  # head centre to junction, as projected
    neck_waist_radius: float
    neck_base_radius: float
    shaft_radius: float  # diaphysis, outer
    lesser_trochanter_t: float  # axial position (mm below the junction)
    scale: float

    @property
    def head_neck_s(self) -> float:
        """Distance from the head centre, along the neck, where the neck leaves the head."""
        return float(np.sqrt(self.head_radius**2 - self.neck_waist_radius**2))

    @property
    def neck_mid_s(self) -> float:
        """Mid-neck: halfway between the head-neck junction and the neck base."""
        base = self.neck_length - 0.6 * self.shaft_radius
        return 0.5 * (self.head_neck_s + base)

    @property
    def cortex_roi_t(self) -> float:
        """Axial level of the reference medial-cortex ROI: 25 mm below the lesser trochanter."""
        return self.lesser_trochanter_t + 25.0 * self.scale

    def shaft_radius_at(self, t: np.ndarray | float) -> np.ndarray:
        """Outer radius along the shaft: the metaphysis flares towards the trochanters."""
        flare = 0.45 * (1.0 - smoothstep(t, -5.0 * self.scale, self.lesser_trochanter_t + 18.0))
        return self.shaft_radius * (1.0 + flare)

    def point(
        self, s_neck: float = 0.0, t_shaft: float | None = None, r: float = 0.0
    ) -> np.ndarray:
        """A point on the neck axis (``s_neck`` mm from the head centre) or, with ``t_shaft``,
        on the shaft (``t_shaft`` mm below the junction, ``r`` mm medial of the axis)."""
        if t_shaft is None:
            return self.head_center - s_neck * self.neck_dir
        return self.junction + t_shaft * self.distal + r * self.medial


def build_femur(row: Mapping, side: str) -> FemurGeometry:
    sign = -1.0 if side == "right" else 1.0  # the patient's right femur is on the image left
    scale = float(row["skeletal_scale"])
    half = HEAD_HALF_DISTANCE_MM * scale * float(row["pelvis_width"])
    head_center = np.array([sign * half, 0.0])
    head_radius = float(row[f"head_radius_{side}_mm"])
    tilt = np.deg2rad(float(row[f"shaft_tilt_{side}_deg"]))
    distal = np.array([-sign * np.sin(tilt), np.cos(tilt)])
    medial = np.array([-sign * np.cos(tilt), -np.sin(tilt)])
    alpha = np.deg2rad(float(row[f"neck_shaft_angle_{side}"]))
    neck_dir = unit(np.sin(alpha) * medial + np.cos(alpha) * distal)
    superior = np.array([-neck_dir[1], neck_dir[0]])
    if superior[1] > 0:
        superior = -superior
    offset = float(row[f"femoral_offset_{side}_mm"]) * float(row[f"neck_foreshortening_{side}"])
    neck_length = offset / np.sin(alpha)
    junction = head_center - neck_length * neck_dir
    return FemurGeometry(
        side=side,
        head_center=head_center,
        head_radius=head_radius,
        medial=medial,
        distal=distal,
        neck_dir=neck_dir,
        superior=superior,
        junction=junction,
        neck_length=float(neck_length),
        neck_waist_radius=0.69 * head_radius,
        neck_base_radius=1.02 * head_radius,
        shaft_radius=13.8 * scale,
        lesser_trochanter_t=30.0 * scale,
        scale=scale,
    )


@dataclass(frozen=True)
class PelvisGeometry:
    scale: float
    width: float  # x multiplier
    height: float  # y multiplier for the ring (pelvic tilt foreshortens it)
    head_half_distance: float


def build_pelvis(row: Mapping) -> PelvisGeometry:
    scale = float(row["skeletal_scale"])
    return PelvisGeometry(
        scale=scale,
        width=scale * float(row["pelvis_width"]),
        height=scale * (1.0 + float(row["pelvic_tilt"])),
        head_half_distance=HEAD_HALF_DISTANCE_MM * scale * float(row["pelvis_width"]),
    )


def cortex_roi_center(femur: FemurGeometry, medial_cortex_mm: float) -> np.ndarray:
    """Mid-thickness of the medial cortex, 25 mm below the lesser trochanter."""
    t = femur.cortex_roi_t
    radius = float(femur.shaft_radius_at(t))
    return femur.point(t_shaft=t, r=radius - 0.5 * medial_cortex_mm)


def _square_box(center_rc: np.ndarray, size_px: int) -> tuple[int, int, int, int]:
    r0 = int(np.floor(center_rc[0] + 0.5 - size_px / 2.0))
    c0 = int(np.floor(center_rc[1] + 0.5 - size_px / 2.0))
    return r0, c0, r0 + size_px, c0 + size_px


def reference_geometry(
    frame: PixelFrame, femurs: dict[str, FemurGeometry], medial_cortex_mm: dict[str, float]
) -> dict[str, float]:
    """Neck axis endpoints and the two reference ROI boxes per side, in pixel indices.

    Boxes are half-open ``(r0, c0, r1, c1)`` as in docs/architecture.md; they may extend past
    the image edge for an extreme position (scorers should clip).
    """
    out: dict[str, float] = {}
    for side in SIDES:
        femur = femurs[side]
        head = frame.to_pixel(femur.head_center)
        base = frame.to_pixel(femur.junction)
        out.update(
            {
                f"{side}_neck_axis_r0": head[0],
                f"{side}_neck_axis_c0": head[1],
                f"{side}_neck_axis_r1": base[0],
                f"{side}_neck_axis_c1": base[1],
            }
        )
        boxes = {
            "neck": (femur.point(s_neck=femur.neck_mid_s), NECK_ROI_MM),
            "cortex": (cortex_roi_center(femur, medial_cortex_mm[side]), CORTEX_ROI_MM),
        }
        for name, (center, size_mm) in boxes.items():
            size_px = max(1, int(round(size_mm / frame.spacing)))
            r0, c0, r1, c1 = _square_box(frame.to_pixel(center), size_px)
            out.update(
                {
                    f"{side}_{name}_roi_r0": r0,
                    f"{side}_{name}_roi_c0": c0,
                    f"{side}_{name}_roi_r1": r1,
                    f"{side}_{name}_roi_c1": c1,
                }
            )
    return out
