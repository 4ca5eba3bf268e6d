"""The cohort table: every latent parameter of every study, drawn without rendering an image.

This is the whole statistical model in one place (population -> systemic and per-hip T-scores
-> bone cues per hip and pelvis density -> nuisance -> readers -> oracle). Rendering reads one
row and adds no information about bone, so statistical checks run on this table alone, fast,
at any size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bone import (
    BONE_CUES,
    posterior_hips,
    probability_of_label,
    sample_bone_cues,
    sample_pelvis_density,
)
from .nuisance import SIDES, SITE_POSITIONING, SitePositioning, sample_acquisition, sample_anatomy
from .population import (
    OSTEOPOROSIS_TSCORE,
    SYSTEMIC_SD,
    Patients,
    calibrate_age_mean,
    clinical_prior_moments,
    sample_patients,
    tscore_mean,
)
from .presets import COHORTS, CohortSpec, Preset, get_preset
from .readers import READERS, score_studies

__all__ = ["REPEAT_FRACTION", "SWAP_SOURCE", "sample_cohort_table"]

# 4,924 radiographs of 4,308 patients: 616 patients (14.3%) have a second radiograph.
REPEAT_FRACTION = (4924 - 4308) / 4308
MIN_DAYS_BETWEEN_STUDIES = 60
_MAX_ATTEMPTS = 200
# The site swap re-renders the internal test cohort's studies at the external site.
SWAP_SOURCE, SWAP_TARGET = "internal_test", "external_test"

Visits = dict[str, np.ndarray]  # one entry per study: owner, date, age, female, weight, T...


def _dates(rng: np.random.Generator, spec: CohortSpec, n: int) -> np.ndarray:
    start = np.datetime64(spec.date_from, "D")
    span = int((np.datetime64(spec.date_to, "D") - start).astype(int))
    return start + rng.integers(0, span + 1, n).astype("timedelta64[D]")


def _visits(
    rng: np.random.Generator, spec: CohortSpec, patients: Patients, n_visits: int
) -> Visits:
    """Each patient's studies (1 or 2) with age, weight and T-scores at the study date."""
    n = len(patients.age)
    dates = np.sort(np.stack([_dates(rng, spec, n) for _ in range(n_visits)], axis=1), axis=1)
    if n_visits == 2:
        # A follow-up is at least two months after the first study (within the period).
        late = np.maximum(dates[:, 1], dates[:, 0] + np.timedelta64(MIN_DAYS_BETWEEN_STUDIES, "D"))
        dates[:, 1] = np.minimum(late, np.datetime64(spec.date_to, "D"))
    owner = np.repeat(np.arange(n), n_visits)
    date = dates.ravel()
    age = patients.age[owner] + (date - dates[owner, 0]).astype(float) / 365.25
    weight_change = np.tile(np.arange(n_visits) > 0, n) * 1.5 * rng.standard_normal(n * n_visits)
    weight = patients.weight[owner] + weight_change
    female = patients.female[owner]
    clinical_mean = tscore_mean(age, female, weight)
    systemic = clinical_mean + patients.systemic_noise[owner]
    right = systemic + patients.hip_deviation[owner, 0]
    left = systemic + patients.hip_deviation[owner, 1]
    lowest = np.minimum(right, left)
    label = np.round(lowest + spec.dxa_tscore_offset, 1) <= OSTEOPOROSIS_TSCORE
    return {
        "owner": owner,
        "date": date,
        "age": age,
        "female": female,
        "weight": weight,
        "height_cm": patients.height_cm(age, owner),
        "peak_height_cm": patients.peak_height_cm[owner],
        "clinical_mean": clinical_mean,
        "tscore_systemic": systemic,
        "tscore_bone_right": right,
        "tscore_bone_left": left,
        "tscore_bone": lowest,
        "label": label,
    }


def _take(visits: Visits, index: np.ndarray, owner_offset: int = 0) -> Visits:
    out = {key: value[index] for key, value in visits.items()}
    out["owner"] = np.unique(out["owner"], return_inverse=True)[1] + owner_offset
    return out


def _select_visits(
    rng: np.random.Generator, spec: CohortSpec, n_studies: int, minimum: int, age_mean: float
) -> Visits:
    """Exactly ``n_studies`` studies with the cohort's prevalence (rounded) and repeat rate.

    Patients with two studies are drawn as they come; single-study patients are then taken
    from a larger pool, as many positive and negative as the target count needs. Choosing by
    label keeps each class's own distribution (like assembling a cohort with known counts),
    so the realised prevalence is the reference's, not a draw around it.
    """
    n_patients = max(1, min(n_studies, int(round(n_studies / (1.0 + REPEAT_FRACTION)))))
    n_double = n_studies - n_patients
    n_single = n_patients - n_double
    target = int(np.clip(round(n_studies * spec.prevalence), minimum, n_studies - minimum))

    def patients(n: int) -> Patients:
        return sample_patients(rng, n, age_mean, spec.female_fraction, spec.weight_shift_kg)

    for _ in range(_MAX_ATTEMPTS):
        doubles = _visits(rng, spec, patients(n_double), 2)
        positives = int(doubles["label"].sum())
        if positives <= target and 2 * n_double - positives <= n_studies - target:
            break
    wanted = int(np.clip(target - positives, 0, n_single))
    pool_size = int(n_single * max(4.0, 3.0 / spec.prevalence)) + 200
    pool = _visits(rng, spec, patients(pool_size), 1)
    positive = np.flatnonzero(pool["label"])[:wanted]
    negative = np.flatnonzero(~pool["label"])[: n_single - wanted]
    if len(positive) < wanted or len(negative) < n_single - wanted:
        raise ValueError(f"{spec.name}: the candidate pool is too small for {n_studies} studies")
    singles = _take(pool, np.sort(np.concatenate([positive, negative])))
    doubles = _take(doubles, np.arange(2 * n_double), owner_offset=n_single)
    return {key: np.concatenate([singles[key], doubles[key]]) for key in singles}


def _one_cohort(
    rng: np.random.Generator,
    spec: CohortSpec,
    n_studies: int,
    minimum: int,
    positioning: SitePositioning | None = None,
) -> pd.DataFrame:
    """One cohort's rows; ``positioning`` overrides the cohort site's habits (site swap)."""
    age_mean = calibrate_age_mean(
        spec.prevalence, spec.female_fraction, spec.dxa_tscore_offset, spec.weight_shift_kg
    )
    visits = _select_visits(rng, spec, n_studies, minimum, age_mean)
    owner, date, age, female, weight = (
        visits[k] for k in ("owner", "date", "age", "female", "weight")
    )
    n_patients = int(owner.max()) + 1
    # Everything below is independent of bone status given the T-scores: drawn after selection.
    first = np.unique(owner, return_index=True)[1]
    anatomy = sample_anatomy(rng, female[first], visits["peak_height_cm"][first])
    anatomy = {key: value[owner] for key, value in anatomy.items()}
    # Cue noise per patient (the same anatomy at every visit): shared, right, left.
    cue_noise = rng.standard_normal((n_patients, len(BONE_CUES), 3))
    pelvis_noise = rng.standard_normal(n_patients)
    clinical_mean = visits["clinical_mean"]
    offset = spec.dxa_tscore_offset
    bone = {side: visits[f"tscore_bone_{side}"] for side in SIDES}
    cues = sample_bone_cues(bone, cue_noise[owner])
    pelvis_density = sample_pelvis_density(visits["tscore_systemic"], pelvis_noise[owner])
    acquisition = sample_acquisition(
        rng, weight, anatomy, positioning or SITE_POSITIONING[spec.site]
    )

    table = pd.DataFrame(
        {
            "cohort": spec.name,
            "site": spec.site,
            "patient_index": owner,
            "study_date": pd.to_datetime(date).strftime("%Y-%m-%d"),
            "age": age,
            "sex": np.where(female, "F", "M"),
            "weight": weight,
            "height_cm": visits["height_cm"],
            "tscore": visits["tscore_bone"] + offset,
            "tscore_bone": visits["tscore_bone"],
            **{f"tscore_{side}": bone[side] + offset for side in SIDES},
            **{f"tscore_bone_{side}": bone[side] for side in SIDES},
            "tscore_systemic": visits["tscore_systemic"],
            "tscore_clinical_mean": clinical_mean + offset,
            "dxa_tscore_offset": offset,
            "label": visits["label"].astype(int),
            **cues,
            "pelvis_density": pelvis_density,
            **{k: v for k, v in anatomy.items() if k != "pelvic_tilt_patient"},
            **acquisition,
            "render_seed": rng.integers(0, 2**63 - 1, n_studies, dtype=np.int64),
        }
    )

    # The ceilings: what the exact cues plus age/sex/weight allow, and each part alone.
    full = posterior_hips(clinical_mean, cues, pelvis_density, offset)
    table["oracle_probability"] = probability_of_label(full)
    # Image only: the prior is the cohort's population (its clinical mixture), not the
    # patient's age, sex and weight; the same prior for every study, so the score is a
    # function of the image cues alone.
    population_mean, population_var = clinical_prior_moments(
        age_mean, spec.female_fraction, spec.weight_shift_kg
    )
    image = posterior_hips(
        np.full(n_studies, population_mean),
        cues,
        pelvis_density,
        offset,
        prior_var=population_var + SYSTEMIC_SD**2,
    )
    table["oracle_image_score"] = probability_of_label(image)
    table["clinical_probability"] = probability_of_label(
        posterior_hips(clinical_mean, None, dxa_offset=offset)
    )

    reader_scores = score_studies(rng, cues)
    for reader in READERS:
        table[f"{reader.name}_score"] = reader_scores[reader.name]
    return table.sort_values(["study_date", "patient_index"], kind="stable")


def _swap_cohort(seed: int, preset: Preset) -> pd.DataFrame:
    """The internal test cohort's studies again, positioned (and so rendered) at site B.

    The same generator state gives the same patients, bones, cues, labels, oracle and reader
    scores and render seeds; only the positioning draws are mapped through site B's habits.
    The DXA offset stays the internal cohort's, so the labels are identical.
    """
    index = list(preset.n_studies).index(SWAP_SOURCE)
    target = COHORTS[SWAP_TARGET]
    rng = np.random.default_rng([seed, index])
    part = _one_cohort(
        rng,
        COHORTS[SWAP_SOURCE],
        preset.n_studies[SWAP_SOURCE],
        preset.min_per_class.get(SWAP_SOURCE, 0),
        positioning=SITE_POSITIONING[target.site],
    )
    part["cohort"] = SWAP_TARGET
    part["site"] = target.site
    return part


def sample_cohort_table(
    preset: str | Preset = "default",
    seed: int = 0,
    n_studies: int | None = None,
    site_swap: bool = False,
) -> pd.DataFrame:
    """Draw every study's latent parameters (no images): one row per study.

    Deterministic for ``(preset, seed, n_studies, site_swap)``. Ids are synthetic
    (``P000001``, ``S000001``) and assigned in cohort, then date order.

    ``site_swap=True`` replaces the external test cohort by the internal test cohort's studies
    positioned at site B (``_swap_cohort``): new study and patient ids (a patient in both test
    sets would be excluded from the internal one by ``make_splits``), and a ``swap_of``
    column naming the internal study each copy re-renders (empty elsewhere). The other
    cohorts are the same as without the swap.
    """
    if isinstance(preset, str):
        preset = get_preset(preset, n_studies)
    elif n_studies is not None:
        preset = preset.scaled(n_studies)
    if site_swap and not {SWAP_SOURCE, SWAP_TARGET} <= set(preset.n_studies):
        raise ValueError(
            f"site_swap needs the '{SWAP_SOURCE}' and '{SWAP_TARGET}' cohorts; preset "
            f"'{preset.name}' has {', '.join(preset.n_studies)}"
        )
    parts = []
    patient_base = 0
    for index, (name, count) in enumerate(preset.n_studies.items()):
        if site_swap and name == SWAP_TARGET:
            part = _swap_cohort(seed, preset)
        else:
            rng = np.random.default_rng([seed, index])
            part = _one_cohort(rng, COHORTS[name], count, preset.min_per_class.get(name, 0))
        part["patient_index"] += patient_base
        patient_base = int(part["patient_index"].max()) + 1
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    # Patient numbers in order of first appearance; study numbers in table order.
    order = pd.unique(table["patient_index"])
    renumber = {old: new for new, old in enumerate(order, start=1)}
    table.insert(0, "patient_id", [f"P{renumber[p]:06d}" for p in table["patient_index"]])
    table.insert(0, "study_id", [f"S{i:06d}" for i in range(1, len(table) + 1)])
    if site_swap:
        # Both parts keep the same row order (same draws, same sort), so copies pair by rank.
        source = table.index[table["cohort"] == SWAP_SOURCE]
        copies = table.index[table["cohort"] == SWAP_TARGET]
        table["swap_of"] = ""
        table.loc[copies, "swap_of"] = table.loc[source, "study_id"].to_numpy()
    return table.drop(columns="patient_index")
