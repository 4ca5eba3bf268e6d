"""Variation that has nothing to do with bone status: anatomy, positioning and acquisition.

Anatomy is drawn once per patient (a second radiograph shows the same femurs); positioning and
exposure change with every study. Only sex (skeletal size) and weight (soft tissue) feed into
these, as in real patients; none depends on the T-score, so any image model that beats
chance must be reading bone. Sources for the ranges: neck-shaft angle 129 +- 5 degrees
(Boese et al., Skeletal Radiol 2016; Gilligan et al., PLoS One 2013), femoral offset ~39 mm and head
diameter 43-50 mm (Lecerf et al., Orthop Traumatol Surg Res 2009), anatomical femoral axis
~8 degrees from vertical.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SIDES", "sample_acquisition", "sample_anatomy"]

SIDES = ("right", "left")  # the patient's sides; right is on the image left


def sample_anatomy(rng: np.random.Generator, female: np.ndarray) -> dict[str, np.ndarray]:
    """Per-patient skeletal geometry; left and right nearly, not exactly, symmetric."""
    n = len(female)
    scale = np.where(female, 1.0, 1.09) * np.exp(0.04 * rng.standard_normal(n))
    nsa = np.clip(129.0 + 5.0 * rng.standard_normal(n), 118.0, 142.0)
    offset = np.clip(39.0 + 4.0 * rng.standard_normal(n), 29.0, 50.0) * scale
    head = 22.5 * scale * np.exp(0.04 * rng.standard_normal(n))
    tilt = 8.0 + 1.5 * rng.standard_normal(n)
    out = {
        "skeletal_scale": scale,
        "pelvis_width": 1.0 + 0.03 * rng.standard_normal(n),
        "pelvic_tilt": 0.06 * rng.standard_normal(n),  # vertical foreshortening of the ring
    }
    for side in SIDES:
        out[f"neck_shaft_angle_{side}"] = nsa + 1.2 * rng.standard_normal(n)
        out[f"femoral_offset_{side}_mm"] = offset + 1.0 * rng.standard_normal(n)
        out[f"head_radius_{side}_mm"] = head + 0.25 * rng.standard_normal(n)
        out[f"shaft_tilt_{side}_deg"] = tilt + 0.7 * rng.standard_normal(n)
    return out


def sample_acquisition(rng: np.random.Generator, weight: np.ndarray) -> dict[str, np.ndarray]:
    """Per-study positioning, body habitus and exposure."""
    n = len(weight)
    out = {
        "rotation_deg": np.clip(2.0 * rng.standard_normal(n), -6.0, 6.0),
        "shift_x_mm": 9.0 * rng.standard_normal(n),
        "shift_y_mm": 9.0 * rng.standard_normal(n),
        # Soft tissue grows with weight (abdominal AP diameter ~2 mm per kg).
        "soft_tissue_mm": np.clip(
            175.0 + 2.2 * (weight - 72.0) + 12.0 * rng.standard_normal(n), 110.0, 330.0
        ),
        "body_half_width_mm": np.clip(
            195.0 + 1.4 * (weight - 72.0) + 10.0 * rng.standard_normal(n), 150.0, 280.0
        ),
        "exposure": np.exp(0.3 * rng.standard_normal(n)),  # dose relative to the AEC target
        "contrast": np.exp(0.12 * rng.standard_normal(n)),  # tone-curve slope multiplier
        "blur_scale": np.exp(0.15 * rng.standard_normal(n)),  # motion, focal spot, plate
        "bowel_gas": rng.poisson(3.0, n),
    }
    for side in ("right", "left"):
        # Leg rotation and anteversion shorten the neck as projected (1 = seen side on).
        out[f"neck_foreshortening_{side}"] = np.clip(
            0.93 + 0.03 * rng.standard_normal(n), 0.82, 1.0
        )
    return out
