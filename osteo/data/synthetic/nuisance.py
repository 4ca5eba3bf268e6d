"""Variation that has nothing to do with bone status: anatomy, positioning and acquisition.

Anatomy is drawn once per patient (a second radiograph shows the same femurs); positioning and
exposure change with every study. Only sex and height (skeletal size) and weight (soft tissue)
feed into these, as in real patients; none depends on the T-score, so any image model that
beats chance must be reading bone. Sources for the ranges: neck-shaft angle 129 +- 5 degrees
(Boese et al., Skeletal Radiol 2016; Gilligan et al., PLoS One 2013), femoral offset ~39 mm and
head diameter 43-50 mm (Lecerf et al., Orthop Traumatol Surg Res 2009), anatomical femoral axis
~8 degrees from vertical. Skeletal size scales with stature: femur length is ~27% of stature
(Feldesman et al., Am J Phys Anthropol 1990), so ``skeletal_scale`` is the peak (young-adult)
height over 162 cm (the women's mean) with a 2% residual; men come out ~9% larger.

Positioning depends on the site's habits (``SitePositioning``, one per site). The projected
femoral neck is shortened by the angle between the neck and the detector: femoral anteversion
(adults ~10-15 degrees, sd ~8; e.g. Tomczak et al., AJR Am J Roentgenol 1997) minus the leg's
internal rotation. Positioning manuals ask for 15-20 degrees of internal rotation of both legs
so that the necks lie parallel to the detector (Bontrager's Textbook of Radiographic
Positioning, AP pelvis); departments differ in how well it is done (feet taped or not, frail
patients who cannot rotate). Pelvic tilt in the supine AP view varies by several degrees
between patients and with a knee support (Siebenrock et al., Clin Orthop Relat Res 2003) and
shortens the pelvic ring vertically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SIDES",
    "SITE_POSITIONING",
    "SitePositioning",
    "neck_foreshortening",
    "sample_acquisition",
    "sample_anatomy",
]

SIDES = ("right", "left")  # the patient's sides; right is on the image left

REFERENCE_HEIGHT_CM = 162.0  # peak height of the average woman: skeletal_scale 1
ANTEVERSION_MEAN_DEG = 12.0
ANTEVERSION_SD_DEG = 8.0
ANTEVERSION_SIDE_SD_DEG = 4.0  # left and right differ by a few degrees
PELVIC_TILT_PATIENT_SD = 0.04  # the person's own lordosis and sacral slope
# Both feet are rotated together: the two legs' rotations correlate. The same at every site,
# so a site swap maps each leg's own standard normal draw (quantile mapping).
LEG_ROTATION_SIDE_CORRELATION = 0.7


@dataclass(frozen=True)
class SitePositioning:
    """How one department positions and centres an AP pelvis radiograph (per-study draws)."""

    name: str
    leg_rotation_mean_deg: float  # internal rotation of the legs (manual asks 15-20)
    leg_rotation_sd_deg: float
    pelvic_tilt_mean: float  # vertical foreshortening of the ring added by the positioning
    pelvic_tilt_sd: float
    rotation_sd_deg: float  # in-plane rotation of the patient on the table
    shift_x_mean_mm: float  # centring of the beam relative to the hips
    shift_x_sd_mm: float
    shift_y_mean_mm: float
    shift_y_sd_mm: float


SITE_POSITIONING: dict[str, SitePositioning] = {
    # Site A: a radiography department with taped feet: ~10 degrees of internal rotation
    # (short of the manual's 15, as usual), tight centring on the symphysis.
    "A": SitePositioning("A", 10.0, 6.0, 0.0, 0.03, 2.0, 0.0, 9.0, 0.0, 9.0),
    # Site B: legs mostly left in neutral (elderly, frail and post-fall patients at a general
    # hospital cannot hold internal rotation), knee supports used or not, looser centring
    # aimed higher on the body (towards L5-S1, so the hips sit ~12 mm lower in the field):
    # more neck foreshortening, more tilt, more rotation and shift. Values chosen to differ on
    # each axis, within the published ranges above.
    "B": SitePositioning("B", 2.0, 9.0, 0.03, 0.05, 3.0, 3.0, 14.0, 12.0, 14.0),
}


def sample_anatomy(
    rng: np.random.Generator, female: np.ndarray, peak_height_cm: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-patient skeletal geometry; left and right nearly, not exactly, symmetric."""
    n = len(female)
    scale = np.asarray(peak_height_cm) / REFERENCE_HEIGHT_CM * np.exp(0.02 * rng.standard_normal(n))
    nsa = np.clip(129.0 + 5.0 * rng.standard_normal(n), 118.0, 142.0)
    offset = np.clip(39.0 + 4.0 * rng.standard_normal(n), 29.0, 50.0) * scale
    head = 22.5 * scale * np.exp(0.04 * rng.standard_normal(n))
    tilt = 8.0 + 1.5 * rng.standard_normal(n)
    anteversion = ANTEVERSION_MEAN_DEG + ANTEVERSION_SD_DEG * rng.standard_normal(n)
    out = {
        "skeletal_scale": scale,
        "pelvis_width": 1.0 + 0.03 * rng.standard_normal(n),
        "pelvic_tilt_patient": PELVIC_TILT_PATIENT_SD * rng.standard_normal(n),
    }
    for side in SIDES:
        out[f"neck_shaft_angle_{side}"] = nsa + 1.2 * rng.standard_normal(n)
        out[f"femoral_offset_{side}_mm"] = offset + 1.0 * rng.standard_normal(n)
        out[f"head_radius_{side}_mm"] = head + 0.25 * rng.standard_normal(n)
        out[f"shaft_tilt_{side}_deg"] = tilt + 0.7 * rng.standard_normal(n)
        own = ANTEVERSION_SIDE_SD_DEG * rng.standard_normal(n)
        out[f"anteversion_{side}_deg"] = anteversion + own
    return out


def neck_foreshortening(anteversion_deg: np.ndarray, leg_rotation_deg: np.ndarray) -> np.ndarray:
    """Projected over true neck length: the cosine of the neck's angle to the detector."""
    angle = np.deg2rad(np.asarray(anteversion_deg) - np.asarray(leg_rotation_deg))
    return np.clip(np.cos(angle), 0.75, 1.0)


def sample_acquisition(
    rng: np.random.Generator,
    weight: np.ndarray,
    anatomy: dict[str, np.ndarray],
    positioning: SitePositioning,
) -> dict[str, np.ndarray]:
    """Per-study positioning, body habitus and exposure.

    ``anatomy`` holds the study's anteversion and patient tilt (one row per study). The draws
    are standard normals mapped through the site's distributions (quantile mapping), and the
    same number is drawn for every site, so the same generator state gives the same study
    positioned by another site's habits (the site swap).
    """
    n = len(weight)
    z = {key: rng.standard_normal(n) for key in ("rotation", "shift_x", "shift_y", "tilt")}
    legs = rng.standard_normal((3, n))
    p = positioning
    out = {
        "rotation_deg": p.rotation_sd_deg * np.clip(z["rotation"], -3.0, 3.0),
        "shift_x_mm": p.shift_x_mean_mm + p.shift_x_sd_mm * z["shift_x"],
        "shift_y_mm": p.shift_y_mean_mm + p.shift_y_sd_mm * z["shift_y"],
        "pelvic_tilt": (
            anatomy["pelvic_tilt_patient"] + p.pelvic_tilt_mean + p.pelvic_tilt_sd * z["tilt"]
        ),
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
    shared = np.sqrt(LEG_ROTATION_SIDE_CORRELATION)
    own = np.sqrt(1.0 - LEG_ROTATION_SIDE_CORRELATION)
    for s, side in enumerate(SIDES):
        z_leg = shared * legs[0] + own * legs[1 + s]
        rotation = p.leg_rotation_mean_deg + p.leg_rotation_sd_deg * z_leg
        out[f"leg_rotation_{side}_deg"] = rotation
        anteversion = anatomy[f"anteversion_{side}_deg"]
        out[f"neck_foreshortening_{side}"] = neck_foreshortening(anteversion, rotation)
    return out
