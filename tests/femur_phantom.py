"""A simple proximal-femur mask drawn from geometry, independent of the synthetic generator."""

from __future__ import annotations

import numpy as np


def _capsule(rr, cc, p0, p1, radius):
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    t = np.clip(((rr - p0[0]) * d[0] + (cc - p0[1]) * d[1]) / (d @ d), 0, 1)
    return (rr - (p0[0] + t * d[0])) ** 2 + (cc - (p0[1] + t * d[1])) ** 2 <= radius**2


def right_femur_mask(
    shape=(400, 360),
    spacing=1.0,
    rotate_deg=0.0,
    neck_shaft_deg=128.0,
    head=(110.0, 140.0),
    lesser_trochanter=True,
) -> tuple[np.ndarray, dict]:
    """The patient's right femur on the image left (medial = +column), label 1.

    ``lesser_trochanter=False`` leaves it out, as a segmentation that missed it would.

    Returns the mask and the true geometry (head centre, neck axis direction).
    """
    rr, cc = np.indices(shape).astype(float)
    s = 1.0 / spacing  # mm -> px
    head_c = np.array(head) * s
    head_r = 23 * s
    # Neck axis from the head, lateral and down; the shaft axis hangs from the neck base.
    # The neck runs (neck-shaft angle - 90) degrees below the horizontal, head to base.
    below = np.deg2rad(neck_shaft_deg - 90)
    neck_dir = np.array([np.sin(below), -np.cos(below)])
    neck_base = head_c + 48 * s * neck_dir
    shaft_top = neck_base + np.array([-10 * s, -6 * s])
    shaft_bottom = shaft_top + np.array([230 * s, -18 * s])
    mask = (rr - head_c[0]) ** 2 + (cc - head_c[1]) ** 2 <= head_r**2
    mask |= _capsule(rr, cc, head_c, neck_base, 16 * s)
    mask |= _capsule(rr, cc, shaft_top, shaft_bottom, 16 * s)
    mask |= _capsule(
        rr,
        cc,
        shaft_top + np.array([-12 * s, -14 * s]),
        shaft_top + np.array([25 * s, -12 * s]),
        20 * s,
    )  # greater trochanter
    lesser = shaft_top + np.array([40 * s, 14 * s])
    if lesser_trochanter:
        mask |= (rr - lesser[0]) ** 2 + (cc - lesser[1]) ** 2 <= (9 * s) ** 2
    geometry = {
        "head_centre": head_c,
        "head_radius_px": head_r,
        "neck_dir": neck_dir,
        "lesser_trochanter": lesser,
    }
    if rotate_deg:
        from scipy import ndimage

        mask = ndimage.rotate(mask.astype(np.uint8), rotate_deg, reshape=False, order=0) > 0
        centre = (np.array(shape) - 1) / 2
        a = np.deg2rad(rotate_deg)
        # ndimage.rotate turns the image counter-clockwise as displayed (rows down).
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        geometry["head_centre"] = centre + rot @ (head_c - centre)
    return mask, geometry


def pelvis_label_map(shape=(400, 720), **kwargs) -> np.ndarray:
    """Both femurs: the patient's right (label 1) on the image left, left (2) mirrored."""
    right, _ = right_femur_mask((shape[0], shape[1] // 2), **kwargs)
    label_map = np.zeros(shape, dtype=np.uint8)
    label_map[:, : shape[1] // 2][right] = 1
    label_map[:, shape[1] - shape[1] // 2 :][right[:, ::-1]] = 2
    return label_map
