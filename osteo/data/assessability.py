"""Is a study an AP pelvis radiograph the model can assess? The "not assessable" gate.

A model trained on AP pelvis radiographs still returns a probability for a chest film, a
photograph or a hip with one femur; that number means nothing. Each check below returns the
reasons a study is *not assessable* (an empty list when it passes), so the caller can report
them all. The checks, cheapest first:

- ``header_reasons``: the DICOM header says it is not a projection radiograph of the pelvis
  (modality, body part, a lateral view).
- ``image_reasons``: the pixels cannot be a pelvis film (a field of view too small to hold both
  hips, or too large; no contrast).
- ``mask_reasons``: the femur segmentation is not two proximal femurs side by side (a femur not
  found, too small or too large in mm², one much smaller than the other, implausibly placed).
  The pipeline applies it to every study (the segmentation stage's flags, hence
  ``excluded.csv``); prediction applies it to each input.
- ``feature_reasons``: the model's standardised inputs are far outside the training
  distribution (prediction with a trained run; the training split's statistics are saved
  with it).

The module only judges; it reads no file and knows no model. Thresholds are named constants
with the reason for each; they are loose on purpose (a false rejection loses a patient's
result, a false acceptance is still caught by a later check), and their false-rejection rate
on the synthetic test cohorts is in docs/assessability.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from osteo.constants import FEMUR_LABELS
from osteo.data.masks import missing_femurs

__all__ = [
    "NOT_ASSESSABLE",
    "RADIOGRAPH_MODALITIES",
    "OTHER_BODY_PARTS",
    "LATERAL_VIEWS",
    "MIN_PELVIS_WIDTH_MM",
    "MAX_FIELD_MM",
    "MIN_CONTRAST",
    "FEMUR_AREA_MM2",
    "MIN_FEMUR_AREA_RATIO",
    "FEMUR_SEPARATION_MM",
    "MAX_FEMUR_TILT_DEG",
    "FEATURE_Z_LIMIT",
    "MAX_FRACTION_BEYOND",
    "header_reasons",
    "image_reasons",
    "mask_reasons",
    "feature_reasons",
]

# The status word of a study the gate rejects (prediction records, docs).
NOT_ASSESSABLE = "not_assessable"

# DICOM Modality (PS3.3 C.7.3.1.1.1): CR computed and DX digital radiography, RG film
# radiography; OT/SC (other, secondary capture) are how digitised films are often stored.
# An empty modality (a stripped header) is not held against the study.
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "RG", "OT", "SC", ""})
# BodyPartExamined defined terms (PS3.16 Annex L) of regions that hold no hip joint. Anything
# else (PELVIS, HIP, an empty or local-language value such as BECKEN) passes: real headers are
# too inconsistent to demand a pelvis term.
OTHER_BODY_PARTS = frozenset(
    {
        "CHEST", "THORAX", "BREAST", "HEAD", "SKULL", "BRAIN", "FACE", "JAW", "NECK", "CSPINE",
        "TSPINE", "SHOULDER", "CLAVICLE", "ARM", "HUMERUS", "ELBOW", "FOREARM", "WRIST", "HAND",
        "FINGER", "THUMB", "KNEE", "LEG", "TIBIA", "FIBULA", "ANKLE", "FOOT", "TOE", "HEEL",
    }
)  # fmt: skip
# ViewPosition (PS3.3 C.8.11.5.1.1): lateral views; the model reads AP pelvis films only.
LATERAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL", "LLD", "RLD"})

# The femoral heads of an adult lie about 170-200 mm apart (hip joint centre distance, e.g.
# Bell et al., J Biomech 1990; 23:617-621), so a film narrower than 200 mm cannot hold both
# hips with their heads. 700 mm is larger than any cassette or detector (43 x 43 cm, or 35 x 43
# cm; long-leg stitched films are not AP pelvis films).
MIN_PELVIS_WIDTH_MM = 200.0
MAX_FIELD_MM = 700.0
# The 1st-99th percentile spread of the pixels as a fraction of their full range: below this
# the image is a nearly uniform field (a blank or a grey card), not a radiograph, whose bone
# and soft tissue spread over most of the range.
MIN_CONTRAST = 0.02

# A femoral head 43-50 mm across (adult range; e.g. Rubin et al., J Bone Joint Surg Br 1992;
# 74:28-32) is 1,450-1,950 mm² alone; the proximal femur an AP pelvis film shows (head, neck,
# trochanters, a few cm of shaft) is 5,000-10,000 mm² (5,600-9,700 in the synthetic cohorts).
# Below 1,500 mm² a region is a fragment, not a femur; above 25,000 mm² (a 50 mm wide bone
# 500 mm long) it is not one femur either.
FEMUR_AREA_MM2 = (1_500.0, 25_000.0)
# The two femurs of one film differ in area by rotation and positioning only (0.90-1.00 in
# the synthetic cohorts, whose masks are drawn to the same extent); a femur under 40% of the
# other is cut by the film's edge, hidden by a prosthesis or mis-segmented.
MIN_FEMUR_AREA_RATIO = 0.4
# Centre-to-centre distance of the two femur regions across the image: the heads' 170-200 mm
# plus the trochanters' lateral offset (183-269 mm in the synthetic cohorts).
FEMUR_SEPARATION_MM = (100.0, 400.0)
# The line between the two femurs' centres against the horizontal: pelvic obliquity on a
# supine AP film is a few degrees; past 20 degrees the two regions are not a pair of hips.
MAX_FEMUR_TILT_DEG = 20.0

# Standardised model inputs (z = (x - training mean) / training SD) beyond this many SDs are
# outside anything training saw. Radiomics features are heavy-tailed, so single features
# beyond it happen in-distribution; a real chest CR gives 150-2,400 SD on most features.
FEATURE_Z_LIMIT = 10.0
# The share of a study's features beyond the limit above which it is not assessable.
MAX_FRACTION_BEYOND = 0.25


def header_reasons(tags: Mapping[str, object]) -> list[str]:
    """Reasons from a radiograph's header tags (``osteo.data.io.Radiograph.tags``)."""
    if tags.get("format") != "dicom":
        return []  # PNG, TIFF, NIfTI: no header to judge
    reasons = []
    modality = str(tags.get("modality") or "").strip().upper()
    if modality not in RADIOGRAPH_MODALITIES:
        reasons.append(
            f"not a projection radiograph: DICOM modality {modality} (expected CR, DX or RG)"
        )
    body_part = str(tags.get("body_part") or "").strip().upper()
    if body_part in OTHER_BODY_PARTS:
        reasons.append(f"not a pelvis radiograph: the DICOM header's body part is {body_part}")
    view = str(tags.get("view_position") or "").strip().upper()
    if view in LATERAL_VIEWS:
        reasons.append(f"not an AP view: the DICOM header's view position is {view}")
    return reasons


def image_reasons(pixels: np.ndarray, spacing: tuple[float, float] | None) -> list[str]:
    """Reasons from the pixels and, when known, the pixel spacing (row, column) in mm."""
    reasons = []
    values = np.asarray(pixels, dtype=np.float32)
    full = float(values.max() - values.min()) if values.size else 0.0
    if values.size:
        # A strided sample: the percentiles of a 10 MP film in milliseconds.
        step = max(1, int(math.sqrt(values.size / 250_000)))
        lo, hi = np.percentile(values[::step, ::step], [1, 99])
        spread = float(hi - lo) / full if full > 0 else 0.0
    else:
        spread = 0.0
    if spread < MIN_CONTRAST:
        reasons.append(
            f"no image contrast: 98% of the pixels lie within {100 * spread:.1f}% of the "
            f"grey range (a radiograph spreads over more than {100 * MIN_CONTRAST:g}%)"
        )
    if spacing is not None:
        height, width = values.shape[0] * spacing[0], values.shape[1] * spacing[1]
        if width < MIN_PELVIS_WIDTH_MM:
            reasons.append(
                f"field of view too small: the image is {width:.0f} mm wide; an AP pelvis film "
                f"showing both hips is at least {MIN_PELVIS_WIDTH_MM:g} mm wide"
            )
        if max(height, width) > MAX_FIELD_MM:
            reasons.append(
                f"field of view too large: {height:.0f} x {width:.0f} mm (no pelvis film is "
                f"larger than {MAX_FIELD_MM:g} mm a side)"
            )
    return reasons


def mask_reasons(label_map: np.ndarray, spacing: tuple[float, float]) -> list[str]:
    """Reasons from a femur label map (0 background, 1 right, 2 left) at ``spacing`` mm.

    A femur that is absent gives "<side> femur not found" (``missing_femurs``, the wording of
    every stage).
    """
    pixel_mm2 = float(spacing[0]) * float(spacing[1])
    reasons, areas, centres = missing_femurs(label_map), {}, {}
    for side, label in FEMUR_LABELS:
        rows, cols = np.nonzero(label_map == label)
        if rows.size == 0:
            continue
        areas[side] = rows.size * pixel_mm2
        centres[side] = (rows.mean() * spacing[0], cols.mean() * spacing[1])
        lo, hi = FEMUR_AREA_MM2
        if not lo <= areas[side] <= hi:
            reasons.append(
                f"{side} femur implausible: {areas[side]:.0f} mm² (a proximal femur on an AP "
                f"pelvis film is {lo:.0f}-{hi:.0f} mm²)"
            )
    if len(areas) == 2:
        small, large = sorted(areas.values())
        if small < MIN_FEMUR_AREA_RATIO * large:
            which = min(areas, key=areas.get)
            reasons.append(
                f"one femur only partly seen: the {which} femur is {small / large:.0%} of the "
                f"other's area (cut by the film's edge, a prosthesis or a failed segmentation; "
                f"at least {MIN_FEMUR_AREA_RATIO:.0%} expected)"
            )
        dy = centres["left"][0] - centres["right"][0]
        dx = centres["left"][1] - centres["right"][1]
        distance = math.hypot(dx, dy)
        lo, hi = FEMUR_SEPARATION_MM
        if not lo <= distance <= hi:
            reasons.append(
                f"femurs implausibly placed: their centres are {distance:.0f} mm apart "
                f"(expected {lo:.0f}-{hi:.0f} mm on an AP pelvis film)"
            )
        tilt = math.degrees(math.atan2(abs(dy), abs(dx)))
        if tilt > MAX_FEMUR_TILT_DEG:
            reasons.append(
                f"femurs implausibly placed: the line between them is {tilt:.0f} degrees from "
                f"the horizontal (at most {MAX_FEMUR_TILT_DEG:g} expected)"
            )
    return reasons


def feature_reasons(
    standardised: np.ndarray, names: Sequence[str], what: str = "texture"
) -> list[str]:
    """Reasons from one study's standardised model inputs (training mean 0, SD 1)."""
    z = np.abs(np.asarray(standardised, dtype=np.float64).ravel())
    if z.size == 0:
        return []
    beyond = ~np.isfinite(z) | (z > FEATURE_Z_LIMIT)
    fraction = float(beyond.mean())
    if fraction <= MAX_FRACTION_BEYOND:
        return []
    worst = int(np.argmax(np.where(np.isfinite(z), z, np.inf)))
    return [
        f"outside the training distribution: {int(beyond.sum())} of {z.size} {what} features "
        f"are more than {FEATURE_Z_LIMIT:g} SD from the training mean (at most "
        f"{MAX_FRACTION_BEYOND:.0%} allowed; largest {names[worst]} at {z[worst]:.0f} SD)"
    ]
