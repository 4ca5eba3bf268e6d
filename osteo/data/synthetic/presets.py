"""Cohort presets and the two acquisition sites of the synthetic cohort.

The cohort design copies the reference study (Kim et al., Radiology: Artificial Intelligence
2022): a development set from site A (2009-2020), a temporally separated internal test set from
site A (2008 to mid-2009) and an external test set from another hospital, site B (2019-2020),
with its own detector, processing and pixel spacing. Study dates match the default split
settings in ``osteo.config.SplitConfig`` (internal test = site A, 2008-01-01 to 2009-06-30;
external test = site B).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COHORTS",
    "PRESETS",
    "SITES",
    "CohortSpec",
    "Preset",
    "SiteAcquisition",
    "get_preset",
]


@dataclass(frozen=True)
class SiteAcquisition:
    """How one hospital's detector and console turn attenuation into stored pixel values."""

    name: str
    modality: str  # "CR" (computed radiography plate) or "DX" (flat-panel detector)
    sop_class_uid: str
    photometric: str  # how the device stores grey values (MONOCHROME1: bone dark)
    bits_stored: int
    shape: tuple[int, int]  # (rows, columns) after the archive's down-sampling
    spacing_mm: float  # square pixels, at the detector (Imager Pixel Spacing)
    write_pixel_spacing: bool  # whether the device also fills in Pixel Spacing
    photons_per_pixel: float  # unattenuated quanta per pixel at the reference exposure
    blur_mm: float  # focal spot + detector (phosphor scatter for CR) as one Gaussian
    scatter_fraction: float  # scatter-to-primary ratio behind 20 cm of tissue, with the grid
    range_compression: float  # console's low-frequency subtraction ("dynamic range control")
    edge_enhancement: float  # console's unsharp masking gain
    tone_slope: float  # steepness of the console's sigmoid tone curve (x contrast nuisance)
    manufacturer: str
    model_name: str


CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"

SITES: dict[str, SiteAcquisition] = {
    # Site A: a CR reader, noisier (fewer detected quanta, phosphor blur), 12 bits.
    "A": SiteAcquisition(
        name="A",
        modality="CR",
        sop_class_uid=CR_IMAGE_STORAGE,
        photometric="MONOCHROME2",
        bits_stored=12,
        shape=(352, 432),
        spacing_mm=1.0,
        write_pixel_spacing=True,
        photons_per_pixel=2.5e5,
        blur_mm=0.75,
        scatter_fraction=0.45,
        range_compression=0.55,
        edge_enhancement=0.35,
        tone_slope=1.0,
        manufacturer="Synthetic Imaging Co.",
        model_name="SynthCR 12",
    ),
    # Site B: a flat-panel DX system, less noise, sharper, stronger console processing,
    # coarser archived pixels, 14 bits, stored as MONOCHROME1 (bone dark) as many consoles do.
    "B": SiteAcquisition(
        name="B",
        modality="DX",
        sop_class_uid=DX_PRESENTATION_STORAGE,
        photometric="MONOCHROME1",
        bits_stored=14,
        shape=(320, 384),
        spacing_mm=1.15,
        write_pixel_spacing=False,
        photons_per_pixel=8.0e5,
        blur_mm=0.5,
        scatter_fraction=0.35,
        range_compression=0.7,
        edge_enhancement=0.6,
        tone_slope=0.85,
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
