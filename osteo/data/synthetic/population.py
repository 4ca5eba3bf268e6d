"""Who is imaged: age, sex, weight and the DXA T-score drawn as in the population.

The T-score model is the issue's (women lose about 0.35 T per decade after 50, men about 0.2;
heavier people have denser bones), checked against NHANES 2005-2014 femoral-neck/total-hip
osteoporosis prevalence in women: about 7, 12, 26 and 35% at 50-59, 60-69, 70-79 and 80+
(Looker et al., NCHS Data Brief 2012; Wright et al., JBMR 2014). Each cohort's mean age is
solved for so that its expected prevalence matches the reference cohort, which is how the
three reference cohorts differ (a referral population, a year of older records, another
hospital's older clientele) without changing the biology.

Two hips (generator version 2): the person's deviation from the clinical prediction is split
into a systemic part (the whole skeleton: both hips, pelvis, sacrum, spine) and a per-hip part,
so that one hip's T-score keeps the version-1 distribution (total sd 1 around the clinical
prediction) while the two hips differ. Left-right differences of the femoral neck T-score have
an sd of about 0.3-0.5 (Hamdy et al., Osteoporos Int 2006, 17:1772-1780): a per-hip sd of
0.32 gives an sd of the difference of 0.45. The label is on the
LOWER reported hip T-score, as DXA reports (ISCD: use the lowest of the hip sites measured), so
the cohort age is calibrated on the minimum of two correlated normals (``probability_lowest``).

Height (latent, not in the manifest): NHANES 2015-2018 adults aged 60+ average about 159 cm
(women) and 173 cm (men), sd ~7 cm (Fryar et al., NCHS Vital Health Stat 3(46), 2021); height
and weight correlate at r ~0.4-0.5 in adults. Stature is lost with age, about 1 cm per decade
from 40 and faster later (Sorkin et al., Am J Epidemiol 1999), mostly in the spine; the femur
keeps its length, so bone size follows the peak (young-adult) height.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "AGE_RANGE",
    "AGE_SD",
    "HIP_ASYMMETRY_SD",
    "LABEL_THRESHOLD",
    "OSTEOPOROSIS_TSCORE",
    "SYSTEMIC_SD",
    "TSCORE_NOISE_SD",
    "Patients",
    "calibrate_age_mean",
    "clinical_prior_moments",
    "expected_prevalence",
    "probability_lowest",
    "sample_patients",
    "tscore_mean",
    "weight_mean",
]

OSTEOPOROSIS_TSCORE = -2.5  # WHO definition, on the lowest hip T-score
# T-scores are reported to 0.1, so a true -2.46 is reported (and labelled) as -2.5.
LABEL_THRESHOLD = OSTEOPOROSIS_TSCORE + 0.05
AGE_SD = 13.0
AGE_RANGE = (35.0, 95.0)  # DXA referrals; ages outside are redrawn (truncated normal)
WEIGHT_SD = 13.0
WEIGHT_RANGE = (38.0, 140.0)
# Men are heavier; the offsets keep the 84%-women mixture at the N(72 - 0.2 (age - 65), 14).
WEIGHT_SEX_OFFSET = {True: -1.5, False: 8.0}  # keyed by "is female"
TSCORE_NOISE_SD = 1.0  # what age, sex and weight cannot tell about one hip's bone
# ... split into the hip's own deviation and the systemic (whole-skeleton) part.
HIP_ASYMMETRY_SD = 0.32  # sd of T_right - T_left = 0.32 * sqrt(2) = 0.45 (see above)
SYSTEMIC_SD = float(np.sqrt(TSCORE_NOISE_SD**2 - HIP_ASYMMETRY_SD**2))
WEIGHT_TSCORE_SLOPE = 0.025  # T per kg
# (T at age 70 and 72 kg, T per year of age): women lose bone faster than men.
TSCORE_AGE_MODEL = {True: (-1.45, -0.035), False: (-0.85, -0.02)}


# Height: mean at age 40 (peak), sd, and the height lost per year after 40 (spine).
HEIGHT_PEAK_MEAN_CM = {True: 162.0, False: 176.0}  # keyed by "is female"; ~159/173 at 60+
HEIGHT_SD_CM = 7.0
HEIGHT_LOSS_CM_PER_YEAR = 0.12
HEIGHT_WEIGHT_CORRELATION = 0.45


def weight_mean(age: np.ndarray, female: np.ndarray, weight_shift: float = 0.0) -> np.ndarray:
    """Mean weight (kg); ``weight_shift`` is a cohort's population difference (site B)."""
    offset = np.where(female, WEIGHT_SEX_OFFSET[True], WEIGHT_SEX_OFFSET[False])
    return 72.0 - 0.2 * (np.asarray(age) - 65.0) + offset + weight_shift


def tscore_mean(age: np.ndarray, female: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The T-score that age, sex and weight predict (the clinical part of the model)."""
    female = np.asarray(female, dtype=bool)
    intercept = np.where(female, TSCORE_AGE_MODEL[True][0], TSCORE_AGE_MODEL[False][0])
    slope = np.where(female, TSCORE_AGE_MODEL[True][1], TSCORE_AGE_MODEL[False][1])
    return (
        intercept
        + slope * (np.asarray(age) - 70.0)
        + WEIGHT_TSCORE_SLOPE * (np.asarray(weight) - 72.0)
    )


def _truncated_age(age_mean: float) -> stats.rv_continuous:
    lo, hi = ((a - age_mean) / AGE_SD for a in AGE_RANGE)
    return stats.truncnorm(lo, hi, loc=age_mean, scale=AGE_SD)


def probability_lowest(
    mean_right: np.ndarray,
    mean_left: np.ndarray,
    sd: np.ndarray | float,
    rho: np.ndarray | float,
    threshold: float,
) -> np.ndarray:
    """P(min(T_right, T_left) <= threshold) for jointly normal hips, exactly.

    Each hip is N(mean, sd^2) and the two correlate with ``rho``; the answer is one minus the
    upper orthant probability, which the bivariate normal CDF gives in closed form through
    Owen's T function (Owen, Ann Math Stat 1956): Phi2(h, k; r) = (Phi(h) + Phi(k)) / 2
    - T(h, a_h) - T(k, a_k) - beta.
    """
    sd = np.asarray(sd, dtype=float)
    rho = np.asarray(rho, dtype=float)
    # P(T_r > t, T_l > t) = Phi2(h, k; rho) with h = (mean - t) / sd.
    h = (np.asarray(mean_right, dtype=float) - threshold) / sd
    k = (np.asarray(mean_left, dtype=float) - threshold) / sd
    h, k = np.broadcast_arrays(h, k)
    # The formula divides by h and k; the CDF is continuous, so nudge exact zeros.
    h = np.where(np.abs(h) < 1e-12, 1e-12, h)
    k = np.where(np.abs(k) < 1e-12, 1e-12, k)
    root = np.sqrt(1.0 - rho**2)
    beta = np.where(h * k > 0, 0.0, 0.5)
    both_above = (
        0.5 * (special.ndtr(h) + special.ndtr(k))
        - special.owens_t(h, (k - rho * h) / (h * root))
        - special.owens_t(k, (h - rho * k) / (k * root))
        - beta
    )
    return np.clip(1.0 - both_above, 0.0, 1.0)


def _age_grid(age_mean: float) -> tuple[np.ndarray, np.ndarray]:
    ages = np.linspace(*AGE_RANGE, 601)
    density = _truncated_age(age_mean).pdf(ages)
    return ages, density / density.sum()


def expected_prevalence(
    age_mean: float,
    female_fraction: float,
    threshold: float = OSTEOPOROSIS_TSCORE,
    weight_shift: float = 0.0,
) -> float:
    """P(lower hip T <= threshold) for a cohort, integrating the model over age and weight.

    Given age and sex, weight is normal and T is linear in it, so the two hips are jointly
    normal: a shared part (weight, systemic bone) with variance SYSTEMIC_SD^2 + (0.025 * 13)^2
    and each hip's own HIP_ASYMMETRY_SD. The minimum is exact (``probability_lowest``); only
    the age integral is numerical.
    """
    ages, density = _age_grid(age_mean)
    shared_var = SYSTEMIC_SD**2 + (WEIGHT_TSCORE_SLOPE * WEIGHT_SD) ** 2
    hip_var = shared_var + HIP_ASYMMETRY_SD**2
    total = 0.0
    for female, share in ((True, female_fraction), (False, 1.0 - female_fraction)):
        sex = np.full(ages.shape, female)
        mean = tscore_mean(ages, sex, weight_mean(ages, sex, weight_shift))
        p = probability_lowest(mean, mean, np.sqrt(hip_var), shared_var / hip_var, threshold)
        total += share * float(np.sum(density * p))
    return total


def clinical_prior_moments(
    age_mean: float, female_fraction: float, weight_shift: float = 0.0
) -> tuple[float, float]:
    """Mean and variance over a cohort of the clinical prediction ``tscore_mean``.

    The image-only oracle knows the cohort's population but not the patient's age, sex and
    weight: its prior on the systemic T-score is this mixture, approximated by a normal.
    """
    ages, density = _age_grid(age_mean)
    first = second = 0.0
    for female, share in ((True, female_fraction), (False, 1.0 - female_fraction)):
        sex = np.full(ages.shape, female)
        mean = tscore_mean(ages, sex, weight_mean(ages, sex, weight_shift))
        var = (WEIGHT_TSCORE_SLOPE * WEIGHT_SD) ** 2
        first += share * float(np.sum(density * mean))
        second += share * float(np.sum(density * (mean**2 + var)))
    return first, second - first**2


def calibrate_age_mean(
    prevalence: float,
    female_fraction: float,
    dxa_offset: float = 0.0,
    weight_shift: float = 0.0,
) -> float:
    """The cohort mean age (before truncation) whose expected prevalence is ``prevalence``.

    The label threshold is -2.45 because T-scores are reported to one decimal and a reported
    -2.5 counts as osteoporosis; a DXA reading ``dxa_offset`` lower moves it the other way.
    """
    threshold = LABEL_THRESHOLD - dxa_offset

    def gap(age_mean: float) -> float:
        found = expected_prevalence(age_mean, female_fraction, threshold, weight_shift)
        return found - prevalence

    return float(optimize.brentq(gap, 30.0, 100.0, xtol=1e-3))


@dataclass
class Patients:
    """One row per patient, at the first radiograph."""

    age: np.ndarray
    female: np.ndarray
    weight: np.ndarray
    peak_height_cm: np.ndarray  # young-adult stature: sets the skeleton's size
    systemic_noise: np.ndarray  # the person's whole-skeleton deviation from the prediction
    hip_deviation: np.ndarray  # (n, 2): each hip's own deviation, right then left

    def height_cm(self, age: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Stature at ``age``: peak height less the (spinal) loss after 40."""
        return self.peak_height_cm[owner] - HEIGHT_LOSS_CM_PER_YEAR * np.maximum(age - 40.0, 0.0)


def sample_patients(
    rng: np.random.Generator,
    n: int,
    age_mean: float,
    female_fraction: float,
    weight_shift: float = 0.0,
) -> Patients:
    age = _truncated_age(age_mean).rvs(size=n, random_state=rng)
    female = rng.random(n) < female_fraction
    weight_z = rng.standard_normal(n)
    weight = np.clip(weight_mean(age, female, weight_shift) + WEIGHT_SD * weight_z, *WEIGHT_RANGE)
    noise = SYSTEMIC_SD * rng.standard_normal(n)
    hips = HIP_ASYMMETRY_SD * rng.standard_normal((n, 2))
    # Taller people are heavier: peak height shares r = 0.45 with the weight residual, so bone
    # size relates to weight through height (not to age: the femur does not shrink).
    r = HEIGHT_WEIGHT_CORRELATION
    height_z = r * weight_z + np.sqrt(1.0 - r**2) * rng.standard_normal(n)
    peak = np.where(female, HEIGHT_PEAK_MEAN_CM[True], HEIGHT_PEAK_MEAN_CM[False])
    return Patients(
        age=age,
        female=female,
        weight=weight,
        peak_height_cm=peak + HEIGHT_SD_CM * height_z,
        systemic_noise=noise,
        hip_deviation=hips,
    )
