"""The cohort table: every latent parameter of every study, drawn without rendering an image.

This is the whole statistical model in one place (population -> T-score -> bone cues ->
nuisance -> readers -> oracle). Rendering reads one row and adds no information about bone, so
statistical checks run on this table alone, fast, at any size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bone import (
    BONE_CUES,
    image_only_score,
    posterior_tscore,
    probability_of_label,
    sample_bone_cues,
)
from .nuisance import SIDES, sample_acquisition, sample_anatomy
from .population import (
    OSTEOPOROSIS_TSCORE,
    Patients,
    calibrate_age_mean,
    sample_patients,
    tscore_mean,
)
from .presets import COHORTS, CohortSpec, Preset, get_preset
from .readers import READERS, score_studies

__all__ = ["REPEAT_FRACTION", "sample_cohort_table"]

# 4,924 radiographs of 4,308 patients: 616 patients (14.3%) have a second radiograph.
REPEAT_FRACTION = (4924 - 4308) / 4308
MIN_DAYS_BETWEEN_STUDIES = 60
_MAX_ATTEMPTS = 200

Visits = dict[str, np.ndarray]  # one entry per study: owner, date, age, female, weight, T


def _dates(rng: np.random.Generator, spec: CohortSpec, n: int) -> np.ndarray:
    start = np.datetime64(spec.date_from, "D")
    span = int((np.datetime64(spec.date_to, "D") - start).astype(int))
    return start + rng.integers(0, span + 1, n).astype("timedelta64[D]")


def _visits(
    rng: np.random.Generator, spec: CohortSpec, patients: Patients, n_visits: int
) -> Visits:
    """Each patient's studies (1 or 2) with age, weight and T-score at the study date."""
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
    tscore_bone = clinical_mean + patients.tscore_noise[owner]
    label = np.round(tscore_bone + spec.dxa_tscore_offset, 1) <= OSTEOPOROSIS_TSCORE
    return {
        "owner": owner,
        "date": date,
        "age": age,
        "female": female,
        "weight": weight,
        "clinical_mean": clinical_mean,
        "tscore_bone": tscore_bone,
        "label": label,
    }


def _take(visits: Visits, index: np.ndarray, owner_offset: int = 0) -> Visits:
    out = {key: value[index] for key, value in visits.items()}
    out["owner"] = np.unique(out["owner"], return_inverse=True)[1] + owner_offset
    return out


def _select_visits(
    rng: np.random.Generator, spec: CohortSpec, n_studies: int, minimum: int
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
    age_mean = calibrate_age_mean(spec.prevalence, spec.female_fraction, spec.dxa_tscore_offset)

    for _ in range(_MAX_ATTEMPTS):
        doubles = _visits(
            rng, spec, sample_patients(rng, n_double, age_mean, spec.female_fraction), 2
        )
        positives = int(doubles["label"].sum())
        if positives <= target and 2 * n_double - positives <= n_studies - target:
            break
    wanted = int(np.clip(target - positives, 0, n_single))
    pool_size = int(n_single * max(4.0, 3.0 / spec.prevalence)) + 200
    pool = _visits(rng, spec, sample_patients(rng, pool_size, age_mean, spec.female_fraction), 1)
    positive = np.flatnonzero(pool["label"])[:wanted]
    negative = np.flatnonzero(~pool["label"])[: n_single - wanted]
    if len(positive) < wanted or len(negative) < n_single - wanted:
        raise ValueError(f"{spec.name}: the candidate pool is too small for {n_studies} studies")
    singles = _take(pool, np.sort(np.concatenate([positive, negative])))
    doubles = _take(doubles, np.arange(2 * n_double), owner_offset=n_single)
    return {key: np.concatenate([singles[key], doubles[key]]) for key in singles}


def _one_cohort(
    rng: np.random.Generator, spec: CohortSpec, n_studies: int, minimum: int
) -> pd.DataFrame:
    visits = _select_visits(rng, spec, n_studies, minimum)
    owner, date, age, female, weight = (
        visits[k] for k in ("owner", "date", "age", "female", "weight")
    )
    n_patients = int(owner.max()) + 1
    # Everything below is independent of bone status given the T-score: drawn after selection.
    first = np.unique(owner, return_index=True)[1]
    anatomy = sample_anatomy(rng, female[first])
    cue_noise = rng.standard_normal((n_patients, len(BONE_CUES)))
    clinical_mean = visits["clinical_mean"]
    tscore_bone = visits["tscore_bone"]
    tscore = tscore_bone + spec.dxa_tscore_offset
    cues = sample_bone_cues(tscore_bone, cue_noise[owner])
    acquisition = sample_acquisition(rng, weight)

    table = pd.DataFrame(
        {
            "cohort": spec.name,
            "site": spec.site,
            "patient_index": owner,
            "study_date": pd.to_datetime(date).strftime("%Y-%m-%d"),
            "age": age,
            "sex": np.where(female, "F", "M"),
            "weight": weight,
            "tscore": tscore,
            "tscore_bone": tscore_bone,
            "tscore_clinical_mean": clinical_mean + spec.dxa_tscore_offset,
            "dxa_tscore_offset": spec.dxa_tscore_offset,
            "label": visits["label"].astype(int),
            **cues,
            # Render-branch shim for the v2 columns (the latent helper's table replaces it):
            # both hips share today's cues, the pelvis follows the bone T-score.
            **{f"{name}_{side}": value for name, value in cues.items() for side in SIDES},
            "pelvis_density": 1.0 + 0.05 * tscore_bone,
            **{key: value[owner] for key, value in anatomy.items()},
            **acquisition,
            "render_seed": rng.integers(0, 2**63 - 1, n_studies, dtype=np.int64),
        }
    )

    # The ceilings: what the exact cues plus age/sex/weight allow, and each part alone.
    mean, sd = posterior_tscore(clinical_mean, cues, spec.dxa_tscore_offset)
    table["oracle_probability"] = probability_of_label(mean, sd)
    table["oracle_image_score"] = -image_only_score(cues)
    mean, sd = posterior_tscore(clinical_mean, None, spec.dxa_tscore_offset)
    table["clinical_probability"] = probability_of_label(mean, sd)

    reader_scores = score_studies(rng, cues)
    for reader in READERS:
        table[f"{reader.name}_score"] = reader_scores[reader.name]
    return table.sort_values(["study_date", "patient_index"], kind="stable")


def sample_cohort_table(
    preset: str | Preset = "default", seed: int = 0, n_studies: int | None = None
) -> pd.DataFrame:
    """Draw every study's latent parameters (no images): one row per study.

    Deterministic for ``(preset, seed, n_studies)``. Ids are synthetic (``P000001``,
    ``S000001``) and assigned in cohort, then date order.
    """
    if isinstance(preset, str):
        preset = get_preset(preset, n_studies)
    elif n_studies is not None:
        preset = preset.scaled(n_studies)
    parts = []
    patient_base = 0
    for index, (name, count) in enumerate(preset.n_studies.items()):
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
    return table.drop(columns="patient_index")
