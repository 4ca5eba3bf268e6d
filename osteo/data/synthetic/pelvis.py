"""Render the pelvic ring as seen on an AP radiograph, in mm of cortical-bone equivalent.

Parts (per side where paired): iliac wing with its crest, the supra-acetabular bone, the
acetabulum with its socket around the femoral head, the sourcil (sclerotic roof line), the
anterior and posterior acetabular walls crossing the femoral head, the teardrop, the
iliopectineal line (pelvic brim), the obturator ring (pubic and ischial rami), the pubic
bodies with the symphysis, the ischial tuberosity, the sacrum with its foramina, and the
lowest lumbar vertebra. Sizes are those of an adult female pelvis at skeletal scale 1 (head
centres 176 mm apart).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .anatomy import FemurGeometry, PelvisGeometry, PixelFrame
from .primitives import ellipsoid, ring_tube, smoothstep, tube
from .texture import TrabecularField

__all__ = ["render_pelvis"]

Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _rotate(x, y, center, degrees):
    a = np.deg2rad(degrees)
    c, s = np.float32(np.cos(a)), np.float32(np.sin(a))
    dx, dy = x - np.float32(center[0]), y - np.float32(center[1])
    return c * dx + s * dy, -s * dx + c * dy


def _segment_distance(x, y, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = (
        (x - np.float32(a[0])) * np.float32(ab[0]) + (y - np.float32(a[1])) * np.float32(ab[1])
    ) / np.float32(ab @ ab)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(
        x - np.float32(a[0]) - t * np.float32(ab[0]), y - np.float32(a[1]) - t * np.float32(ab[1])
    )


def _add(canvas: np.ndarray, frame: PixelFrame, center, reach_mm: float, shape: Shape) -> None:
    """Evaluate ``shape`` (patient mm -> bone mm) near ``center`` and add it to the canvas."""
    c = np.asarray(center, dtype=float)
    corners = np.array(
        [c + [dx, dy] for dx in (-reach_mm, reach_mm) for dy in (-reach_mm, reach_mm)]
    )
    box = frame.box(corners, margin_mm=2.0)
    if box is None:
        return
    x, y = frame.patient_grid(*box)
    canvas[box] += shape(x, y)


# The iliac wing's outline in polar form around a point above the acetabulum's medial half:
# (angle from straight up, degrees, positive = lateral; distance in mm). Medial end: sciatic
# notch and the sacroiliac joint; top: the crest; lateral: ASIS, AIIS, acetabular margin.
_ILIUM_ANGLES = np.array([-60.0, -45.0, -28.0, -16.0, 0.0, 12.0, 25.0, 36.0, 50.0, 60.0, 75.0])
_ILIUM_REACH = np.array([24.0, 40.0, 68.0, 128.0, 133.0, 128.0, 110.0, 84.0, 54.0, 44.0, 34.0])


def _ilium(pivot, sign, sx, sy) -> Shape:
    def shape(x, y):
        dx = (x - np.float32(pivot[0])) * np.float32(sign / sx)  # lateral positive
        dy = (y - np.float32(pivot[1])) / np.float32(sy)
        r = np.hypot(dx, dy)
        angle = np.degrees(np.arctan2(dx, -dy))
        reach = np.interp(angle, _ILIUM_ANGLES, _ILIUM_REACH, left=0.0, right=0.0).astype(
            np.float32
        )
        gap = reach - r
        inside = smoothstep(gap, 0.0, 2.5)
        body = 6.0 * (1.0 - smoothstep(r, 25.0, 75.0))  # thick above the acetabulum
        crest_zone = smoothstep(angle, -20.0, -12.0) * (1.0 - smoothstep(angle, 32.0, 42.0))
        crest = 7.0 * np.exp(-np.abs(gap) / 4.5) * crest_zone
        margin = 2.5 * np.exp(-np.abs(gap) / 3.0)
        # Towards the hip the wing becomes the acetabular roof, drawn separately.
        above_hip = smoothstep(-dy, 4.0, 30.0)
        return ((1.8 + body + margin) * inside + crest * smoothstep(gap, -2.0, 0.5)) * above_hip

    return shape


def _circle_through(p1, p2, p3) -> tuple[np.ndarray, float]:
    """Centre and radius of the circle through three points (2D)."""
    a = 2.0 * np.array([p2 - p1, p3 - p1])
    b = np.array([p2 @ p2 - p1 @ p1, p3 @ p3 - p1 @ p1])
    center = np.linalg.solve(a, b)
    return center, float(np.linalg.norm(p1 - center))


# The acetabular walls as seen on an AP radiograph, in head radii around the head centre
# (u towards the midline, v caudal): each wall's free edge is an arc from the lateral end of
# the roof down across the head. The posterior wall's edge runs near the head centre (normally
# it passes through or just lateral of it), the anterior wall's edge more medially and more
# obliquely (Tannast, Siebenrock and Anderson, AJR 2007, "Femoroacetabular impingement:
# radiographic diagnosis"; a crossing of the two is the crossover sign). Each wall covers the
# head on the medial side of its edge; its rim, seen tangentially, is a thin dense line.
_POSTERIOR_EDGE = np.array([[-0.80, -0.62], [-0.12, 0.0], [0.20, 1.08]])
_ANTERIOR_EDGE = np.array([[-0.70, -0.72], [0.30, 0.05], [0.95, 0.55]])


def _wall_jitter(rng: np.random.Generator) -> np.ndarray:
    """Per-study shifts of the edges (head radii; version and tilt vary) and thickness factors."""
    return np.concatenate([rng.normal(0.0, 0.08, 2), rng.uniform(0.7, 1.3, 2)])


def _acetabular_walls(head: np.ndarray, r_h: float, sign: float, jitter: np.ndarray) -> Shape:
    walls = []
    for k, (edge, sheet, rim) in enumerate(
        ((_POSTERIOR_EDGE, 2.5, 5.0), (_ANTERIOR_EDGE, 1.8, 4.0))
    ):
        points = edge.copy()
        points[1, 0] += jitter[k]
        center, radius = _circle_through(*points)
        medial_side = np.array([2.0, 0.0])  # a point surely covered: beyond the medial pole
        covered_inside = np.linalg.norm(medial_side - center) < radius
        walls.append((center, radius, covered_inside, sheet * jitter[2 + k], rim * jitter[2 + k]))

    def shape(x, y):
        u = (x - np.float32(head[0])) * np.float32(-sign)
        v = y - np.float32(head[1])
        dist = np.hypot(u, v)
        fade = 1.0 - smoothstep(dist, r_h + 4.0, r_h + 14.0)
        total = np.zeros_like(x)
        for center, radius, covered_inside, sheet, rim in walls:
            d = np.hypot(u - np.float32(center[0] * r_h), v - np.float32(center[1] * r_h))
            depth = d - np.float32(radius * r_h)  # mm past the edge, positive on the covered side
            if covered_inside:
                depth = -depth
            total += sheet * smoothstep(depth, 0.0, 2.5) + rim * tube(depth - 1.0, 1.0)
        return total * fade

    return shape


def render_pelvis(
    frame: PixelFrame,
    pelvis: PelvisGeometry,
    femurs: dict[str, FemurGeometry],
    rng: np.random.Generator,
    *,
    walls_rng: np.random.Generator,
) -> np.ndarray:
    """Pelvic bone (mm of cortical-bone equivalent). ``rng`` draws the cancellous texture,
    ``walls_rng`` (a stream of its own, ``clutter.clutter_rng(study, "acetabular_walls")``)
    the per-study variation of the acetabular walls."""
    canvas = np.zeros(frame.shape, dtype=np.float32)
    sx, sy, hw = pelvis.width, pelvis.height, pelvis.head_half_distance

    for side, sign in (("right", -1.0), ("left", 1.0)):
        head = femurs[side].head_center
        r_h = femurs[side].head_radius
        medial = -sign

        pivot = np.array([sign * (hw - 8.0 * sx), 0.0])
        reach = 140.0 * max(sx, sy)
        _add(canvas, frame, pivot + [0.0, -60.0 * sy], reach * 0.75, _ilium(pivot, sign, sx, sy))

        # Supra-acetabular bone and the acetabular walls: dense, without sharp edges.
        mass_c = head + np.array([medial * 10.0 * sx, -20.0 * sy])

        def acetabulum(x, y, mass_c=mass_c):
            d2 = np.square((x - np.float32(mass_c[0])) / sx) + np.square(
                (y - np.float32(mass_c[1])) / sy
            )
            return 7.0 * np.exp(-d2 / (2.0 * 17.0**2))

        _add(canvas, frame, mass_c, 50.0 * sx, acetabulum)

        def roof_lines(x, y, head=head, r_h=r_h, sign=sign):
            dx, dy = x - np.float32(head[0]), y - np.float32(head[1])
            dist = np.hypot(dx, dy)
            # Angle from straight up, positive towards the midline.
            angle = np.arctan2(-sign * dx, -dy)
            return (
                2.2
                * tube(dist - (r_h + 4.0), 2.4)
                * (smoothstep(angle, -1.25, -0.95) * (1.0 - smoothstep(angle, 0.7, 1.0)))
            )

        _add(canvas, frame, head, r_h + 8.0, roof_lines)

        teardrop_c = head + np.array([medial * (r_h + 9.0 * sx), 8.0 * sy])

        def teardrop(x, y, c=teardrop_c):
            u, v = x - np.float32(c[0]), y - np.float32(c[1])
            return 1.6 * ring_tube(u, v, 5.0 * sx, 11.0 * sy, 1.5) * (v > -4.0)

        _add(canvas, frame, teardrop_c, 16.0, teardrop)

        # Obturator ring: superior pubic ramus, ischium and ischiopubic ramus around the foramen.
        ring_c = np.array([sign * 46.0 * sx, 46.0 * sy])

        def obturator(x, y, c=ring_c, sign=sign):
            u, v = _rotate(x, y, c, -sign * 25.0)
            # Superior pubic ramus and ischial body thicker, ischiopubic ramus thin.
            lateral = smoothstep(sign * (x - np.float32(c[0])), 0.0, 18.0)
            radius = (3.4 + 2.4 * smoothstep(-v, -5.0, 20.0) + 1.6 * lateral) * sx
            return 1.0 * ring_tube(u, v, 19.0 * sx, 26.0 * sy, radius)

        _add(canvas, frame, ring_c, 42.0 * sx, obturator)

        pubis_c = np.array([sign * 16.0 * sx, 50.0 * sy])

        def pubis(x, y, c=pubis_c):
            u, v = x - np.float32(c[0]), y - np.float32(c[1])
            body = ellipsoid(u, v, 14.0 * sx, 19.0 * sy, 10.0)
            rim = ring_tube(u, v, 14.0 * sx, 19.0 * sy, 1.5)
            return (0.45 * body + 1.0 * rim) * smoothstep(np.abs(x), 2.0, 3.5)  # symphysis gap

        _add(canvas, frame, pubis_c, 24.0 * sx, pubis)

        # Superior pubic ramus: from below the acetabulum to the top of the pubic body.
        ramus_a = np.array([sign * (hw - 30.0 * sx), 14.0 * sy])
        ramus_b = np.array([sign * 14.0 * sx, 36.0 * sy])

        def ramus(x, y, a=ramus_a, b=ramus_b):
            return 0.8 * tube(_segment_distance(x, y, a, b), 6.5 * sx)

        _add(canvas, frame, 0.5 * (ramus_a + ramus_b), 50.0 * sx, ramus)

        tuberosity_c = np.array([sign * 64.0 * sx, 66.0 * sy])

        def tuberosity(x, y, c=tuberosity_c, sign=sign):
            u, v = _rotate(x, y, c, sign * 20.0)
            return 0.35 * ellipsoid(u, v, 12.0 * sx, 20.0 * sy, 14.0)

        _add(canvas, frame, tuberosity_c, 24.0 * sx, tuberosity)

    def brim(x, y):
        u, v = x, y + np.float32(30.0 * sy)
        return (
            2.6 * ring_tube(u, v, 64.0 * sx, 60.0 * sy, 2.2) * smoothstep(y, -80.0 * sy, -50.0 * sy)
        )

    _add(canvas, frame, (0.0, -30.0 * sy), 70.0 * sx, brim)

    def sacrum(x, y):
        top, bottom = -138.0 * sy, -22.0 * sy
        frac = np.clip((y - top) / (bottom - top), 0.0, 1.0)
        # Wide alae at S1 narrowing with concave borders to the apex, then the coccyx.
        half_width = (6.0 + 48.0 * np.power(1.0 - frac, 1.3)) * sx
        inside = smoothstep(half_width - np.abs(x), 0.0, 4.0) * smoothstep(y, top, top + 5.0)
        inside = inside * (1.0 - smoothstep(y, bottom - 6.0, bottom + 16.0 * sy))
        body = (4.0 + 1.6 * np.exp(-np.square(x) / 18.0)) * inside
        # Sacroiliac joints: a lucent line along the upper two thirds of each border.
        joint = np.exp(-np.square((np.abs(x) - half_width) / 1.6)) * (
            1.0 - smoothstep(frac, 0.5, 0.7)
        )
        holes = np.zeros_like(x)
        for k in range(4):
            fy = (-116.0 + 20.0 * k) * sy
            for fx in (-1.0, 1.0):
                d = np.hypot(x - np.float32(fx * (21.0 - 2.5 * k) * sx), y - np.float32(fy))
                holes += 1.0 - smoothstep(d, (4.5 - 0.7 * k) - 1.5, (4.5 - 0.7 * k) + 1.0)
        return body * (1.0 - 0.6 * np.minimum(holes, 1.0)) - 2.5 * joint * smoothstep(
            y, top, top + 5.0
        )

    _add(canvas, frame, (0.0, -85.0 * sy), 80.0 * sx, sacrum)

    def lumbar(x, y):
        """L5: body, pedicles (rings seen end-on) and transverse processes."""
        level = np.float32(-165.0 * sy)
        u, v = x / (25.0 * sx), (y - level) / (14.0 * sy)
        body = np.sqrt(np.clip(1.0 - np.power(u, 4) - np.power(v, 4), 0.0, 1.0))
        parts = 4.0 * body
        for side in (-1.0, 1.0):
            du, dv = x - np.float32(side * 15.0 * sx), y - level
            parts = parts + 1.2 * ring_tube(du, dv, 4.5 * sx, 6.5 * sy, 1.3)
            parts = parts + 0.5 * ellipsoid(
                x - np.float32(side * 38.0 * sx), dv, 15.0 * sx, 5.0 * sy, 8.0
            )
        return parts

    _add(canvas, frame, (0.0, -165.0 * sy), 56.0 * sx, lumbar)

    for side, sign in (("right", -1.0), ("left", 1.0)):
        head, r_h = femurs[side].head_center, femurs[side].head_radius
        walls = _acetabular_walls(head, r_h, sign, _wall_jitter(walls_rng))
        _add(canvas, frame, head, r_h + 16.0, walls)

    # Cancellous texture of the pelvic bones at its physical scale (isotropic, Tb.Sp ~0.9 mm;
    # fixed statistics: the pelvis follows bone status through its density, pelvis_density).
    np.maximum(canvas, 0.0, out=canvas)  # the joint lines may not make bone negative
    bone = canvas > 0.05
    x, y = frame.patient_grid(*frame.full())
    field = TrabecularField(
        int(rng.integers(0, 2**62)), 0.9, 0.2, hurst=0.4, elongation=1.0, pixel_mm=frame.spacing
    )
    canvas[bone] *= 1.0 + 0.12 * field(x[bone], y[bone])
    return canvas
