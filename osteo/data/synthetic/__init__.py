"""The synthetic hip-radiograph cohort: osteo's built-in data set and its benchmark.

No public hip radiographs with DXA labels can be downloaded, so osteo generates cohorts that
copy the reference study's design (Kim et al., Radiology: AI 2022): AP pelvis radiographs with
both proximal femurs, T-scores drawn as in the population, image cues of bone status with
realistic strength and noise, nuisance variation, two hospitals, two simulated readers, and
the oracle AUC (the ceiling) per cohort. See docs/synthetic.md.

    from osteo.data.synthetic import generate_cohort, sample_cohort_table, PRESETS
    generate_cohort("data/synthetic", preset="default", seed=0, workers=2)

Modules, each with one job: ``presets`` (cohort sizes, sites), ``population`` (age, sex,
weight, T-score), ``bone`` (image cues of bone status, oracle posterior), ``nuisance``
(anatomy, positioning, exposure), ``readers`` (radiologists' scores), ``table`` (all latent
parameters, no images), ``anatomy`` (geometry and reference ROIs), ``primitives``,
``texture``, ``femur``, ``pelvis``, ``soft_tissue`` (rendering parts), ``resample``
(coarse grids for smooth fields), ``acquisition`` (detector and console), ``render`` (one
study), ``writers`` (DICOM/PNG), ``generate`` (the folder).
"""

from .anatomy import CORTEX_ROI_MM, NECK_ROI_MM
from .bone import BONE_CUES
from .generate import IMAGE_FORMATS, MANIFEST_COLUMNS, cohort_summary, generate_cohort
from .presets import COHORTS, PRESETS, SITES, CohortSpec, Preset, SiteAcquisition, get_preset
from .readers import READERS
from .render import RenderedStudy, render_study
from .table import sample_cohort_table

__all__ = [
    "BONE_CUES",
    "COHORTS",
    "CORTEX_ROI_MM",
    "IMAGE_FORMATS",
    "MANIFEST_COLUMNS",
    "NECK_ROI_MM",
    "PRESETS",
    "READERS",
    "SITES",
    "CohortSpec",
    "Preset",
    "RenderedStudy",
    "SiteAcquisition",
    "cohort_summary",
    "generate_cohort",
    "get_preset",
    "render_study",
    "sample_cohort_table",
]
