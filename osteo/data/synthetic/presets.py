"""Cohort presets and the two acquisition sites of the synthetic cohort.

The cohort design copies the reference study (Kim et al., Radiology: Artificial Intelligence
2022): a development set from site A (2009-2020), a temporally separated internal test set from
site A (2008 to mid-2009) and an external test set from another hospital, site B (2019-2020),
with its own detector, processing and pixel spacing. Study dates match the default split
settings in ``osteo.config.SplitConfig`` (internal test = site A, 2008-01-01 to 2009-06-30;
external test = site B).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "ARCHIVE_SPACING_A_MM",
    "ARCHIVE_SPACING_B_MM",
    "COHORTS",
    "MAX_SPACING_MM",
    "MIN_SPACING_MM",
    "PRESETS",
    "SITES",
    "CohortSpec",
    "Preset",
    "SiteAcquisition",
    "get_preset",
]


@dataclass(frozen=True)
class SiteAcquisition:
    """How one hospital's detector and console turn attenuation into stored pixel values.

    Everything is in millimetres of the detector plane, so a site renders at any pixel spacing:
    ``native_spacing_mm`` is the detector's own pixel pitch, ``archive_spacing_mm`` the spacing
    at which the hospital's PACS export writes the cohort (down-sampled, as many exports are),
    and the stored shape follows from the field of view (rows = round(height / spacing)).
    ``spacing_mm`` is the spacing this instance renders at (the archive spacing unless
    :meth:`at_spacing` chose another).
    """

    name: str
    modality: str  # "CR" (computed radiography plate) or "DX" (flat-panel detector)
    sop_class_uid: str
    photometric: str  # how the device stores grey values (MONOCHROME1: bone dark)
    bits_stored: int
    field_of_view_mm: tuple[float, float]  # (height, width) of the exposed detector area
    native_spacing_mm: float  # the detector's pixel pitch
    archive_spacing_mm: float  # what the default export writes (one constant per site)
    write_pixel_spacing: bool  # whether the device also fills in Pixel Spacing
    photons_per_mm2: float  # detected quanta per mm^2 of unattenuated beam, reference exposure
    blur_mm: float  # focal spot + detector (phosphor scatter for CR) as one Gaussian sigma
    scatter_fraction: float  # scatter-to-primary ratio behind 20 cm of tissue, with the grid
    range_compression: float  # console's low-frequency subtraction ("dynamic range control")
    range_kernel_mm: float  # its low-pass width (Gaussian sigma)
    edge_enhancement: float  # console's unsharp masking gain
    edge_kernel_mm: float  # its low-pass width (Gaussian sigma)
    tone_slope: float  # steepness of the console's sigmoid tone curve (x contrast nuisance)
    tone_centre: float  # where the sigmoid is centred on the auto-ranged scale (0..1)
    manufacturer: str
    model_name: str
    # Patient motion during the exposure: a per-study Gaussian blur whose sigma is this value
    # times an exponential draw from the study's own stream (0, both default sites: patients
    # held still; a site for robustness studies can set it).
    motion_blur_mm: float = 0.0
    spacing_mm: float = 0.0  # the spacing rendered at; 0 means the archive spacing

    def __post_init__(self) -> None:
        if self.spacing_mm == 0.0:
            object.__setattr__(self, "spacing_mm", self.archive_spacing_mm)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) at ``spacing_mm``: the field of view divided by the spacing."""
        height, width = self.field_of_view_mm
        return int(round(height / self.spacing_mm)), int(round(width / self.spacing_mm))

    def at_spacing(self, spacing_mm: float | None) -> SiteAcquisition:
        """This site rendered at ``spacing_mm`` (None: the archive spacing)."""
        if spacing_mm is None:
            return replace(self, spacing_mm=self.archive_spacing_mm)
        spacing_mm = float(spacing_mm)
        if not MIN_SPACING_MM <= spacing_mm <= MAX_SPACING_MM:
            raise ValueError(
                f"site {self.name}: pixel spacing {spacing_mm:g} mm is outside the supported "
                f"{MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm"
            )
        return replace(self, spacing_mm=spacing_mm)


MIN_SPACING_MM = 0.1
MAX_SPACING_MM = 1.5
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"

# Archive (default) spacings: the main pipeline resamples to 2-5 mm for segmentation, so image
# size mostly costs reading time and radiomics ROI pixel counts; see docs/synthetic.md
# ("Pixel spacing") for the measurements behind these two constants.
ARCHIVE_SPACING_A_MM = 0.7
ARCHIVE_SPACING_B_MM = 1.0

SITES: dict[str, SiteAcquisition] = {
    # Site A: a CR reader (storage-phosphor plate, 0.15 mm read-out pitch as on the common
    # 35 x 43 cm cassettes, e.g. Fujifilm FCR / Carestream CR readers at "standard" pitch),
    # noisier (phosphor DQE ~0.3), phosphor light spread as blur, 12 bits, exported at 0.7 mm.
    "A": SiteAcquisition(
        name="A",
        modality="CR",
        sop_class_uid=CR_IMAGE_STORAGE,
        photometric="MONOCHROME2",
        bits_stored=12,
        field_of_view_mm=(350.0, 430.0),  # a 35 x 43 cm cassette, landscape for an AP pelvis
        native_spacing_mm=0.15,
        archive_spacing_mm=ARCHIVE_SPACING_A_MM,
        write_pixel_spacing=True,
        photons_per_mm2=2.5e5,
        blur_mm=0.30,
        scatter_fraction=0.45,
        range_compression=0.55,
        range_kernel_mm=30.0,
        edge_enhancement=0.35,
        edge_kernel_mm=2.0,
        tone_slope=1.0,
        tone_centre=0.55,
        manufacturer="Synthetic Imaging Co.",
        model_name="SynthCR 12",
    ),
    # Site B: a CsI flat panel of 0.139 mm pitch and 43 x 43 cm (as e.g. Varex/Trixell 4343
    # panels), run at a much lower detector dose (DR protocols at a higher speed class spend
    # the panel's higher DQE on dose: fewer detected quanta per mm^2 than A), so noisier; the
    # panel itself is sharper, but the console processes harder (stronger, narrower edge
    # enhancement that amplifies the noise, stronger range compression, a flatter tone curve
    # centred lower), 14 bits stored as MONOCHROME1 (bone dark), and the PACS export
    # down-samples to 1.0 mm. The square 43 x 43 cm field shows more above and below the hips
    # than A's landscape cassette. The dose, console and export settings were set with the
    # site-swap study (benchmarks/site_swap.py; docs/synthetic.md, "Site swap") so that a model
    # trained at A loses AUC at B as the reference's did (0.04-0.06), not gains it. Patient
    # motion (motion_blur_mm) is off: tried at 0.4 and 0.8 mm it cost the deep head 0.015-0.06
    # on the site swap but 0.16-0.21 on the external cohort (docs/synthetic.md, "Site swap").
    "B": SiteAcquisition(
        name="B",
        modality="DX",
        sop_class_uid=DX_PRESENTATION_STORAGE,
        photometric="MONOCHROME1",
        bits_stored=14,
        field_of_view_mm=(430.0, 430.0),
        native_spacing_mm=0.139,
        archive_spacing_mm=ARCHIVE_SPACING_B_MM,
        write_pixel_spacing=False,
        photons_per_mm2=0.7e5,
        blur_mm=0.20,
        scatter_fraction=0.35,
        range_compression=0.75,
        range_kernel_mm=25.0,
        edge_enhancement=0.75,
        edge_kernel_mm=1.5,
        tone_slope=0.75,
        tone_centre=0.5,
        manufacturer="Example Medical Systems",
        model_name="FlatPanel DX-2",
    ),
}


@dataclass(frozen=True)
class CohortSpec:
    """One cohort of the reference design: where and when it was imaged, and its prevalence."""

    name: str
    site: str
    date_from: str  # YYYY-MM-DD, inclusive
    date_to: str
    # Study-level share with T-score <= -2.5: the age mix is tuned to it and each cohort is
    # assembled with exactly round(n * prevalence) positive studies.
    prevalence: float
    female_fraction: float
    # The hospital's DXA reads this much lower than site A's for the same bone (manufacturers'
    # reference databases differ by 0.2-0.5 SD at the hip); a label shift, invisible in images.
    dxa_tscore_offset: float = 0.0
    # The population's weight differs by this much at the same age and sex (kg).
    weight_shift_kg: float = 0.0


COHORTS: dict[str, CohortSpec] = {
    # 618 of 4,924 radiographs (12.6%); 3,632 of 4,308 patients women (84.3%).
    "development": CohortSpec("development", "A", "2009-07-01", "2020-12-31", 0.1255, 0.843),
    # 45 of 497 (9.1%), temporally before the development period.
    "internal_test": CohortSpec("internal_test", "A", "2008-01-01", "2009-06-30", 0.0905, 0.843),
    # 111 of 444 (25%) at another hospital (the "about 20%"; the paper's counts win):
    # older patients (mean age ~70, from the calibration), a DXA that reads 0.3 T lower, and
    # a different clientele: a general hospital seeing frail and post-fall patients has more
    # men (78% women rather than 84%; men are a fifth to a quarter of DXA referrals in many
    # services) and lighter patients at the same age and sex (-3 kg). Chosen values, not the
    # reference's (which does not publish site B's weight): the point is that the population
    # differs on several axes at once, as between real hospitals.
    "external_test": CohortSpec(
        "external_test",
        "B",
        "2019-01-01",
        "2020-12-31",
        0.25,
        0.78,
        dxa_tscore_offset=-0.3,
        weight_shift_kg=-3.0,
    ),
}


@dataclass(frozen=True)
class Preset:
    """How many studies each cohort gets, and (for tiny cohorts) the fewest of each class."""

    name: str
    n_studies: dict[str, int]
    # Tiny cohorts get at least this many positive and negative studies, so every test sees
    # both classes in every cohort (the counts change, each class's distribution does not).
    min_per_class: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.n_studies.values())

    def scaled(self, n_total: int) -> Preset:
        """The same cohort proportions with ``n_total`` studies in all (each cohort >= 1)."""
        if n_total < len(self.n_studies):
            raise ValueError(f"n_studies must be at least {len(self.n_studies)}, got {n_total}")
        shares = {k: v / self.total for k, v in self.n_studies.items()}
        counts = {k: max(1, int(round(n_total * s))) for k, s in shares.items()}
        # Put the rounding remainder into the largest cohort so the total is exact.
        largest = max(counts, key=counts.get)
        counts[largest] += n_total - sum(counts.values())
        # A cohort of n studies can hold at most n // 2 of each class.
        minimum = {k: min(m, counts[k] // 2) for k, m in self.min_per_class.items()}
        return Preset(self.name, counts, minimum)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        {"development": 24, "internal_test": 8, "external_test": 8},
        {"development": 4, "internal_test": 2, "external_test": 2},
    ),
    # The README's quick example (configs/quickstart.yaml, about a minute on 2 cores): 80
    # studies, enough for a U-Net with Dice >= 0.9 on both femurs, and an enriched prevalence
    # (a quarter to a half positive) so val and both test sets hold both classes with room to
    # spare: 12 development positives give val 3 with val_fraction 0.25.
    "quickstart": Preset(
        "quickstart",
        {"development": 48, "internal_test": 16, "external_test": 16},
        {"development": 12, "internal_test": 4, "external_test": 6},
    ),
    # ~1,500 studies: ~120 development positives, ~30 internal and ~50 external positives,
    # enough for AUC confidence intervals of about +-0.05 on the test cohorts.
    "default": Preset(
        "default",
        {"development": 960, "internal_test": 340, "external_test": 200},
        {"development": 0, "internal_test": 0, "external_test": 0},
    ),
    "paper": Preset(
        "paper",
        {"development": 4924, "internal_test": 497, "external_test": 444},
        {"development": 0, "internal_test": 0, "external_test": 0},
    ),
}


def get_preset(name: str, n_studies: int | None = None) -> Preset:
    """A preset by name, optionally rescaled to ``n_studies`` in all."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset '{name}'; expected one of {', '.join(PRESETS)}") from None
    return preset if n_studies is None else preset.scaled(n_studies)
