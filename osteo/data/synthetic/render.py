"""Render one study: the table row in, the stored image, the femur mask and the geometry out.

Everything random here (texture realisations, quantum noise, gas pockets) comes from the
study's own ``render_seed``, so a study renders identically in any worker, in any order.
Rendering adds no information about bone status beyond the row's cue values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .acquisition import acquire
from .anatomy import build_femur, build_frame, build_pelvis, reference_geometry
from .bone import trabecular_appearance
from .clutter import clutter_rng, plan_clutter
from .femur import medial_cortex_mm, render_femur
from .nuisance import SIDES
from .pelvis import render_pelvis
from .presets import SITES, SiteAcquisition
from .soft_tissue import render_gas, render_soft_tissue

__all__ = ["MU_BONE", "MU_SOFT", "RenderedStudy", "render_study"]

# Linear attenuation at an effective ~60 keV (NIST XCOM): water/soft tissue ~0.020 /mm,
# cortical bone ~0.065 /mm, so bone adds ~0.045 /mm over the tissue it displaces.
MU_SOFT = 0.020
MU_BONE = 0.045


@dataclass
class RenderedStudy:
    stored: np.ndarray  # uint16, as the device stores it (MONOCHROME1 at site B: bone dark)
    mask: np.ndarray  # uint8 label map: 0 background, 1 right femur (image left), 2 left
    geometry: dict[str, float]  # reference neck axes and ROI boxes, pixel indices
    site: SiteAcquisition


def render_study(study: Mapping) -> RenderedStudy:
    site = SITES[str(study["site"])]
    rng = np.random.default_rng(int(study["render_seed"]))
    frame = build_frame(study, site.shape, site.spacing_mm)
    femurs = {side: build_femur(study, side) for side in SIDES}
    look = trabecular_appearance(
        float(study["trabecular_pattern"]),
        float(study["trabecular_density"]),
        float(study["hurst"]),
    )
    cti, calcar = float(study["cti"]), float(study["calcar_mm"])
    # Collimation, lead marker and burned-in text: planned in mm, clear of both femurs.
    clutter = plan_clutter(study, frame, femurs)

    soft = render_soft_tissue(frame, study, rng) + render_gas(frame, study, rng)
    walls_rng = clutter_rng(study, "acetabular_walls")
    bone = render_pelvis(frame, build_pelvis(study), femurs, rng, walls_rng=walls_rng)
    trabecular = np.zeros(frame.shape, dtype=np.float32)
    mask = np.zeros(frame.shape, dtype=np.uint8)
    for label, side in enumerate(SIDES, start=1):
        layers = render_femur(frame, femurs[side], cti, calcar, look, rng)
        if layers is None:
            continue
        bone[layers.box] += layers.cortical_mm
        trabecular[layers.box] += layers.trabecular_mm
        mask[layers.box][layers.footprint] = label

    attenuation = MU_SOFT * soft + MU_BONE * (bone + look.density * trabecular)
    clutter.add_attenuation(attenuation, frame)
    fluence = clutter.fluence(frame)
    stored = acquire(attenuation, soft > 30.0, site, study, rng, fluence=fluence)
    stored = clutter.burn(stored, frame, site.bits_stored, site.photometric)

    cortex = {s: medial_cortex_mm(femurs[s], cti, calcar, femurs[s].cortex_roi_t) for s in SIDES}
    geometry = reference_geometry(frame, femurs, cortex)
    geometry["pixel_spacing_mm"] = site.spacing_mm
    return RenderedStudy(stored=stored, mask=mask, geometry=geometry, site=site)
