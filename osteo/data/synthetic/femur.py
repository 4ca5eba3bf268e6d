"""Render one proximal femur: outline, cortex, and the trabecular groups of the head and neck.

The femur is the smooth union of a sphere (head), a tapered tube (neck), a flaring tube
(shaft) and two ellipsoids (greater and lesser trochanter). Each solid is also shrunk by its
local cortical thickness; the difference of the two unions is cortical bone, the inner union
is medullary space, filled with trabecular bone in the head, neck, trochanters and metaphysis.

The trabecular density is organised in the classical groups (Ward 1838; Singh et al. 1970):
the principal compressive group fanning from the calcar up into the weight-bearing dome of the
head, the principal tensile group arching from the lateral cortex below the greater trochanter
over the neck into the inferior head, the secondary compressive group fanning from the medial
cortex below the lesser trochanter to the greater trochanter, and Ward's triangle, the sparse
region between them. Each group's texture is a physically scaled trabecular field (texture.py)
aligned with its streamlines and pre-filtered for the output pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import FemurGeometry, PixelFrame, unit
from .bone import TrabecularAppearance
from .primitives import ellipsoid, smooth_union, smoothstep, sphere, tube
from .texture import TrabecularField

__all__ = ["FemurLayers", "medial_cortex_mm", "render_femur"]

HEAD_SHELL_MM = 1.6  # subchondral bone plate
SUPERIOR_NECK_CORTEX_MM = 1.3
LATERAL_METAPHYSIS_CORTEX_MM = 1.4
TROCHANTER_SHELL_MM = 1.0
MEDIAL_SHARE_OF_CORTEX = 0.53  # the medial diaphyseal cortex is a little thicker


@dataclass
class FemurLayers:
    """Per-pixel results inside ``box`` (rows, cols slices of the full image)."""

    box: tuple[slice, slice]
    cortical_mm: np.ndarray  # chord through cortical bone
    trabecular_mm: np.ndarray  # chord through trabecular bone, weighted by local density (0..1+)
    footprint: np.ndarray  # bool: the femur's silhouette (the mask label)


def _project(x: np.ndarray, y: np.ndarray, origin: np.ndarray, axis: np.ndarray) -> np.ndarray:
    return (x - np.float32(origin[0])) * np.float32(axis[0]) + (
        y - np.float32(origin[1])
    ) * np.float32(axis[1])


def _diaphysis_cortices(femur: FemurGeometry, cti: float) -> tuple[float, float]:
    total = cti * 2.0 * femur.shaft_radius
    return MEDIAL_SHARE_OF_CORTEX * total, (1.0 - MEDIAL_SHARE_OF_CORTEX) * total


def medial_cortex_mm(femur: FemurGeometry, cti: float, calcar_mm: float, t: float) -> float:
    """Medial cortical thickness at ``t`` mm below the junction (calcar -> diaphysis)."""
    blend = float(smoothstep(t, femur.lesser_trochanter_t, femur.lesser_trochanter_t + 45.0))
    return (1.0 - blend) * calcar_mm + blend * _diaphysis_cortices(femur, cti)[0]


def _greater_trochanter(femur: FemurGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre and axes (long axis leaning medially at the tip by ~10 degrees)."""
    s = femur.scale
    center = femur.junction - 0.75 * femur.shaft_radius * femur.medial - 15.0 * s * femur.distal
    lean = np.deg2rad(10.0)
    long_axis = unit(np.cos(lean) * femur.distal - np.sin(lean) * femur.medial)
    short_axis = np.array([-long_axis[1], long_axis[0]])
    return center, long_axis, short_axis


def _circle_through(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> tuple[np.ndarray, float]:
    ax, ay = p1
    bx, by = p2
    cx, cy = p3
    d = 2.0 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    ux = (
        (ax**2 + ay**2) * (by - cy) + (bx**2 + by**2) * (cy - ay) + (cx**2 + cy**2) * (ay - by)
    ) / d
    uy = (
        (ax**2 + ay**2) * (cx - bx) + (bx**2 + by**2) * (ax - cx) + (cx**2 + cy**2) * (bx - ax)
    ) / d
    center = np.array([ux, uy])
    return center, float(np.linalg.norm(p1 - center))


def _angle_from(x, y, origin: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from ``origin`` and signed angle from the ``reference`` direction."""
    dx = x - np.float32(origin[0])
    dy = y - np.float32(origin[1])
    along = dx * np.float32(reference[0]) + dy * np.float32(reference[1])
    across = dy * np.float32(reference[0]) - dx * np.float32(reference[1])
    return np.hypot(dx, dy), np.arctan2(across, along)


def _solids(femur: FemurGeometry, x, y, cti: float, calcar_mm: float):
    """Outer and inner (cortex removed) half-chords of each solid, and the shaft coordinate."""
    s_ = femur.scale
    h = femur.head_center
    # Head.
    dx, dy = x - np.float32(h[0]), y - np.float32(h[1])
    head_out = sphere(dx, dy, femur.head_radius)
    head_in = sphere(dx, dy, femur.head_radius - HEAD_SHELL_MM)

    # Neck: s along the axis from the head centre, q towards the superior surface.
    s = -(dx * np.float32(femur.neck_dir[0]) + dy * np.float32(femur.neck_dir[1]))
    q = dx * np.float32(femur.superior[0]) + dy * np.float32(femur.superior[1])
    waist_s = 1.05 * femur.head_radius
    radius = femur.neck_waist_radius + (femur.neck_base_radius - femur.neck_waist_radius) * (
        smoothstep(s, waist_s, femur.neck_length)
    )
    # Round the neck's ends off inside the head and the trochanteric mass.
    end = femur.neck_length + 0.2 * femur.head_radius
    radius = radius * np.sqrt(np.clip(1.0 - np.square(np.maximum(s - end, 0.0) / 12.0), 0.0, 1.0))
    radius = radius * (s > 0.0)
    neck_out = tube(q, radius)
    thickness = 0.5 * (SUPERIOR_NECK_CORTEX_MM + calcar_mm)
    shift = 0.5 * (calcar_mm - SUPERIOR_NECK_CORTEX_MM)  # thicker below: canal sits higher
    neck_in = tube(q - np.float32(shift), np.maximum(radius - thickness, 0.0))

    # Shaft: t down the axis from the junction, r medial of the axis.
    t = _project(x, y, femur.junction, femur.distal)
    r = _project(x, y, femur.junction, femur.medial)
    shaft_r = femur.shaft_radius_at(t)
    top = -0.55 * femur.head_radius
    shaft_r = shaft_r * np.sqrt(np.clip(1.0 - np.square(np.minimum(t - top, 0.0) / 14.0), 0.0, 1.0))
    blend = smoothstep(t, femur.lesser_trochanter_t, femur.lesser_trochanter_t + 45.0)
    med_d, lat_d = _diaphysis_cortices(femur, cti)
    c_med = (1.0 - blend) * calcar_mm + blend * med_d
    c_lat = (1.0 - blend) * LATERAL_METAPHYSIS_CORTEX_MM + blend * lat_d
    shaft_out = tube(r, shaft_r)
    shaft_in = tube(r + 0.5 * (c_med - c_lat), np.maximum(shaft_r - 0.5 * (c_med + c_lat), 0.0))

    # Greater trochanter.
    gt_c, gt_long, gt_short = _greater_trochanter(femur)
    u, v = _project(x, y, gt_c, gt_long), _project(x, y, gt_c, gt_short)
    a, b, c = 21.0 * s_, 14.5 * s_, 17.0 * s_
    gt_out = ellipsoid(u, v, a, b, c)
    sh = TROCHANTER_SHELL_MM
    gt_in = ellipsoid(u, v, a - sh, b - sh, c - sh)

    # Lesser trochanter: a posteromedial knob at the base of the neck.
    lt_t = femur.lesser_trochanter_t
    lt_c = femur.point(t_shaft=lt_t, r=float(femur.shaft_radius_at(lt_t)) - 1.0 * s_)
    u, v = _project(x, y, lt_c, femur.distal), _project(x, y, lt_c, femur.medial)
    lt_out = ellipsoid(u, v, 12.0 * s_, 7.5 * s_, 12.0 * s_)
    lt_in = ellipsoid(u, v, 12.0 * s_ - sh, 7.5 * s_ - sh, 12.0 * s_ - sh)

    outer = smooth_union([head_out, neck_out, shaft_out, gt_out, lt_out])
    inner = smooth_union([head_in, neck_in, shaft_in, gt_in, lt_in])
    return outer, np.minimum(inner, outer), t, gt_in > 0


def _trabecular_density(
    femur: FemurGeometry, x, y, look: TrabecularAppearance, rng, in_trochanter, pixel_mm: float
) -> np.ndarray:
    """Relative trabecular density (mean ~1 in a healthy neck) with the groups' texture."""
    h, r_h = femur.head_center, femur.head_radius
    medial_h = np.array([np.sign(-h[0]), 0.0])  # towards the midline, horizontally
    up = np.array([0.0, -1.0])
    # Trabeculae of a group are plates and rods aligned with its streamlines, several times
    # longer than their spacing; the background (trochanters, head centre) is isotropic.
    elongation = 7.0
    seeds = rng.integers(0, 2**62, size=4)

    def field(k: int, stretch: float) -> TrabecularField:
        return TrabecularField(
            int(seeds[k]), look.spacing_mm, look.thickness_mm, look.hurst, stretch, pixel_mm
        )

    flows = {
        name: field(k, elongation) for k, name in enumerate(("compressive", "tensile", "secondary"))
    }
    background = field(3, 1.0)

    # Principal compressive: rays from a focus far below the calcar, up into the dome.
    calcar = (
        femur.point(s_neck=0.62 * femur.neck_length)
        - 0.8 * femur.neck_waist_radius * femur.superior
    )
    dome = h + 0.9 * r_h * unit(0.34 * medial_h + 0.94 * up)
    direction = unit(dome - calcar)
    focus = calcar - 140.0 * direction
    dist, angle = _angle_from(x, y, focus, direction)
    d_calcar, d_dome = np.linalg.norm(calcar - focus), np.linalg.norm(dome - focus)
    half = np.arctan(0.55 * r_h / d_dome)
    w_comp = (
        np.exp(-np.power(angle / half, 4))
        * smoothstep(dist, d_calcar - 8.0, d_calcar + 4.0)
        * (1.0 - smoothstep(dist, d_dome, d_dome + 10.0))
    )
    tex_comp = flows["compressive"](dist, angle * d_dome)

    # Principal tensile: arcs through the lateral cortex, the superior neck, the inferior head.
    p_lat = femur.point(t_shaft=12.0 * femur.scale, r=-0.85 * float(femur.shaft_radius_at(12.0)))
    p_top = (
        femur.point(s_neck=0.5 * femur.neck_length)
        + 0.75 * femur.neck_waist_radius * femur.superior
    )
    p_head = h + 0.6 * r_h * unit(0.6 * medial_h + 0.8 * -up)
    center, radius = _circle_through(p_lat, p_top, p_head)
    dist, angle = _angle_from(x, y, center, unit(p_top - center))
    _, a_lat = _angle_from(np.float32(p_lat[0]), np.float32(p_lat[1]), center, unit(p_top - center))
    _, a_head = _angle_from(
        np.float32(p_head[0]), np.float32(p_head[1]), center, unit(p_top - center)
    )
    lo, hi = sorted((float(a_lat), float(a_head)))
    w_tens = (
        np.exp(-np.power((dist - radius + 6.0) / 8.0, 4))
        * smoothstep(angle, lo - 0.05, lo + 0.1)
        * (1.0 - smoothstep(angle, hi - 0.1, hi + 0.05))
    )
    tex_tens = flows["tensile"](angle * radius, dist - radius)

    # Secondary compressive: a fan from the medial cortex below the lesser trochanter to the GT.
    gt_c, _, _ = _greater_trochanter(femur)
    lt_t = femur.lesser_trochanter_t
    origin = femur.point(t_shaft=lt_t + 5.0, r=float(femur.shaft_radius_at(lt_t + 5.0)) - 3.0)
    direction = unit(gt_c - origin)
    dist, angle = _angle_from(x, y, origin, direction)
    reach = float(np.linalg.norm(gt_c - origin))
    w_sec = (
        np.exp(-np.power(angle / 0.45, 4))
        * smoothstep(dist, 8.0, 16.0)
        * (1.0 - smoothstep(dist, reach, reach + 15.0))
    )
    tex_sec = flows["secondary"](dist, angle * 40.0)

    tex_bg = background(x, y)
    strengths = (look.compressive * w_comp, look.tensile * w_tens, look.secondary * w_sec)
    groups = strengths[0] + strengths[1] + strengths[2] + 0.3 * in_trochanter
    # Streaked group textures over a faint isotropic background, scaled back to unit variance
    # so that "contrast" alone sets the texture amplitude.
    texture = 0.5 * tex_bg
    energy = 0.25
    for strength, tex in zip(strengths, (tex_comp, tex_tens, tex_sec), strict=True):
        texture = texture + strength * tex
        energy = energy + np.square(strength)
    texture = texture / np.sqrt(energy)
    density = (0.6 + 0.4 * np.minimum(groups, 1.2)) * (1.0 + look.contrast * texture)

    # Ward's triangle: sparse trabeculae between the groups, widening as bone is lost.
    ward = femur.point(s_neck=femur.neck_length - 0.9 * femur.shaft_radius)
    d2 = np.square(x - np.float32(ward[0])) + np.square(y - np.float32(ward[1]))
    density = density * (1.0 - 0.55 * np.exp(-d2 / (2.0 * look.ward_radius_mm**2)))
    return np.maximum(density, 0.05).astype(np.float32)


def render_femur(
    frame: PixelFrame,
    femur: FemurGeometry,
    cti: float,
    calcar_mm: float,
    look: TrabecularAppearance,
    rng: np.random.Generator,
) -> FemurLayers | None:
    s_ = femur.scale
    bottom = femur.junction + 600.0 * femur.distal
    corners = np.array(
        [
            femur.head_center + np.array([dx, dy]) * (femur.head_radius + 6.0)
            for dx in (-1, 1)
            for dy in (-1, 1)
        ]
    )
    gt_c, _, _ = _greater_trochanter(femur)
    extent = np.vstack(
        [
            corners,
            bottom,
            gt_c - 28.0 * s_ * femur.medial - 28.0 * s_ * femur.distal,
            femur.junction + 40.0 * s_ * femur.medial,
        ]
    )
    box = frame.box(extent, margin_mm=6.0)
    if box is None:
        return None
    x, y = frame.patient_grid(*box)
    outer, inner, t, in_gt = _solids(femur, x, y, cti, calcar_mm)
    # Below the metaphysis the canal holds marrow, not trabecular bone.
    lt = femur.lesser_trochanter_t
    trabecular = 2.0 * inner * (1.0 - smoothstep(t, lt + 5.0, lt + 55.0))
    spongy = trabecular > 0.0  # texture is only computed where there is trabecular bone
    trabecular[spongy] *= _trabecular_density(
        femur, x[spongy], y[spongy], look, rng, in_gt[spongy], frame.spacing
    )
    return FemurLayers(
        box=box,
        cortical_mm=2.0 * (outer - inner),
        trabecular_mm=trabecular,
        footprint=outer > 0.25,
    )
