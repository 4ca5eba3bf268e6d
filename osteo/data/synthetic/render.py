"""Render one study: the table row in, the stored image, the femur mask and the geometry out.

Everything random here (texture realisations, quantum noise, gas pockets) comes from the
study's own ``render_seed``, one named stream per part (``study_stream``), so a study renders
identically in any worker, in any order, and the same anatomy and texture at every pixel
spacing. Everything is laid out in mm; ``spacing_mm`` only sets the pixel grid (the stored
shape is the site's field of view divided by it). Rendering adds no information about bone
status beyond the row's cue values and ``pelvis_density``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .acquisition import acquire
from .anatomy import PixelFrame, build_femur, build_frame, build_pelvis, reference_geometry
from .bone import trabecular_appearance
from .clutter import StudyClutter, clutter_rng, plan_clutter
from .femur import medial_cortex_mm, render_femur
from .nuisance import SIDES
from .pelvis import render_pelvis
from .presets import SITES, SiteAcquisition
from .soft_tissue import render_gas, render_soft_tissue

__all__ = [
    "MU_BONE",
    "MU_SOFT",
    "Attenuation",
    "RenderedStudy",
    "render_attenuation",
    "render_study",
    "study_stream",
]

# Linear attenuation at an effective ~60 keV (NIST XCOM): water/soft tissue ~0.020 /mm,
# cortical bone ~0.065 /mm, so bone adds ~0.045 /mm over the tissue it displaces.
MU_SOFT = 0.020
MU_BONE = 0.045
# Per-hip cues: each femur is drawn from its own side's values (``cti_right`` ...).
FEMUR_CUES = ("cti", "trabecular_density", "trabecular_pattern", "hurst", "calcar_mm")


@dataclass
class RenderedStudy:
    stored: np.ndarray  # uint16, as the device stores it (MONOCHROME1 at site B: bone dark)
    mask: np.ndarray  # uint8 label map: 0 background, 1 right femur (image left), 2 left
    geometry: dict[str, float]  # reference neck axes and ROI boxes, pixel indices
    site: SiteAcquisition  # the site at the spacing rendered (site.spacing_mm, site.shape)


@dataclass
class Attenuation:
    """The study before the detector: line-integrated attenuation and what goes with it."""

    attenuation: np.ndarray  # float32, unitless (mu x chord)
    body: np.ndarray  # bool: behind the patient (the console ranges on these pixels)
    mask: np.ndarray
    geometry: dict[str, float]
    site: SiteAcquisition
    frame: PixelFrame  # pixels <-> patient mm of this render
    clutter: StudyClutter  # collimation, marker and text planned for this study


def study_stream(study: Mapping, part: str) -> np.random.Generator:
    """The random stream of one part of a study (``soft``, ``gas``, ``pelvis``, ``femur_right``,
    ``detector``...): from ``render_seed`` and the part's name only, so adding a part or changing
    the pixel grid (which changes how many numbers a part draws) leaves the others unchanged."""
    return np.random.default_rng([int(study["render_seed"]), zlib.crc32(part.encode())])


def femur_cues(study: Mapping, side: str) -> dict[str, float]:
    """One hip's cue values, read from the ``{cue}_{side}`` columns."""
    try:
        return {cue: float(study[f"{cue}_{side}"]) for cue in FEMUR_CUES}
    except KeyError as error:
        raise KeyError(
            f"study {study.get('study_id', '?')}: column {error.args[0]} missing; the renderer "
            f"needs the per-hip cues {', '.join(c + '_' + side for c in FEMUR_CUES)}"
        ) from None


def render_attenuation(study: Mapping, spacing_mm: float | None = None) -> Attenuation:
    """Everything up to the detector, at ``spacing_mm`` (None: the site's archive spacing)."""
    site = SITES[str(study["site"])].at_spacing(spacing_mm)
    frame = build_frame(study, site.shape, site.spacing_mm, site.field_of_view_mm)
    femurs = {side: build_femur(study, side) for side in SIDES}
    cues = {side: femur_cues(study, side) for side in SIDES}

    soft = render_soft_tissue(frame, study, study_stream(study, "soft"))
    soft += render_gas(frame, study, study_stream(study, "gas"))
    # Systemic bone: pelvis, sacrum and L5 follow the patient's bone status (pelvis_density).
    # Collimation, lead marker and burned-in text: planned in mm, clear of both femurs.
    clutter = plan_clutter(study, frame, femurs)
    walls_rng = clutter_rng(study, "acetabular_walls")
    bone = render_pelvis(
        frame, build_pelvis(study), femurs, study_stream(study, "pelvis"), walls_rng=walls_rng
    )
    bone *= np.float32(study["pelvis_density"])
    femur_bone = np.zeros(frame.shape, dtype=np.float32)
    mask = np.zeros(frame.shape, dtype=np.uint8)
    for label, side in enumerate(SIDES, start=1):
        c = cues[side]
        look = trabecular_appearance(c["trabecular_pattern"], c["trabecular_density"], c["hurst"])
        rng = study_stream(study, f"femur_{side}")
        layers = render_femur(frame, femurs[side], c["cti"], c["calcar_mm"], look, rng)
        if layers is None:
            continue
        femur_bone[layers.box] += layers.cortical_mm + look.density * layers.trabecular_mm
        mask[layers.box][layers.footprint] = label

    attenuation = MU_SOFT * soft + MU_BONE * (bone + femur_bone)
    clutter.add_attenuation(attenuation, frame)  # the lead marker
    cortex = {
        s: medial_cortex_mm(femurs[s], cues[s]["cti"], cues[s]["calcar_mm"], femurs[s].cortex_roi_t)
        for s in SIDES
    }
    geometry = reference_geometry(frame, femurs, cortex)
    geometry["pixel_spacing_mm"] = site.spacing_mm
    return Attenuation(attenuation, soft > 30.0, mask, geometry, site, frame, clutter)


def render_study(study: Mapping, spacing_mm: float | None = None) -> RenderedStudy:
    """Render one study at ``spacing_mm`` (0.1-1.5 mm; None: the site's archive spacing)."""
    scene = render_attenuation(study, spacing_mm)
    rng = study_stream(study, "detector")
    fluence = scene.clutter.fluence(scene.frame)  # collimation: None when fully open
    # Patient motion (site B's frail, post-fall patients): its own stream, so the site swap
    # draws the same number at both sites and only B's scale turns it into blur.
    motion = scene.site.motion_blur_mm * float(study_stream(study, "motion").exponential())
    scene.geometry["motion_blur_mm"] = motion
    stored = acquire(
        scene.attenuation, scene.body, scene.site, study, rng, fluence=fluence, motion_mm=motion
    )
    stored = scene.clutter.burn(stored, scene.frame, scene.site.bits_stored, scene.site.photometric)
    return RenderedStudy(stored=stored, mask=scene.mask, geometry=scene.geometry, site=scene.site)
