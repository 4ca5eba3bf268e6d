"""Who is imaged: age, sex, weight and the DXA T-score drawn as in the population.

The T-score model is the issue's (women lose about 0.35 T per decade after 50, men about 0.2;
heavier people have denser bones), checked against NHANES 2005-2014 femoral-neck/total-hip
osteoporosis prevalence in women: about 7, 12, 26 and 35% at 50-59, 60-69, 70-79 and 80+
(Looker et al., NCHS Data Brief 2012; Wright et al., JBMR 2014). Each cohort's mean age is
solved for so that its expected prevalence matches the reference cohort, which is how the
three reference cohorts differ (a referral population, a year of older records, another
hospital's older clientele) without changing the biology.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "AGE_RANGE",
    "AGE_SD",
    "LABEL_THRESHOLD",
    "OSTEOPOROSIS_TSCORE",
    "TSCORE_NOISE_SD",
    "Patients",
    "calibrate_age_mean",
    "expected_prevalence",
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
TSCORE_NOISE_SD = 1.0  # what age, sex and weight cannot tell about a person's bone
WEIGHT_TSCORE_SLOPE = 0.025  # T per kg
# (T at age 70 and 72 kg, T per year of age): women lose bone faster than men.
TSCORE_AGE_MODEL = {True: (-1.45, -0.035), False: (-0.85, -0.02)}


def weight_mean(age: np.ndarray, female: np.ndarray) -> np.ndarray:
    offset = np.where(female, WEIGHT_SEX_OFFSET[True], WEIGHT_SEX_OFFSET[False])
    return 72.0 - 0.2 * (np.asarray(age) - 65.0) + offset


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


def expected_prevalence(
    age_mean: float, female_fraction: float, threshold: float = OSTEOPOROSIS_TSCORE
) -> float:
    """P(T <= threshold) for a cohort, integrating the model exactly over age and weight.

    Given age and sex, weight is normal and T is linear in it plus normal noise, so T is
    normal with variance 1 + (0.025 * 13)^2; only the age integral is numerical.
    """
    ages = np.linspace(*AGE_RANGE, 601)
    density = _truncated_age(age_mean).pdf(ages)
    density /= density.sum()
    t_sd = np.hypot(TSCORE_NOISE_SD, WEIGHT_TSCORE_SLOPE * WEIGHT_SD)
    total = 0.0
    for female, share in ((True, female_fraction), (False, 1.0 - female_fraction)):
        sex = np.full(ages.shape, female)
        mean = tscore_mean(ages, sex, weight_mean(ages, sex))
        total += share * float(np.sum(density * special.ndtr((threshold - mean) / t_sd)))
    return total


def calibrate_age_mean(prevalence: float, female_fraction: float, dxa_offset: float = 0.0) -> float:
    """The cohort mean age (before truncation) whose expected prevalence is ``prevalence``.

    The label threshold is -2.45 because T-scores are reported to one decimal and a reported
    -2.5 counts as osteoporosis; a DXA reading ``dxa_offset`` lower moves it the other way.
    """
    threshold = LABEL_THRESHOLD - dxa_offset

    def gap(age_mean: float) -> float:
        return expected_prevalence(age_mean, female_fraction, threshold=threshold) - prevalence

    return float(optimize.brentq(gap, 30.0, 100.0, xtol=1e-3))


@dataclass
class Patients:
    """One row per patient, at the first radiograph."""

    age: np.ndarray
    female: np.ndarray
    weight: np.ndarray
    tscore_noise: np.ndarray  # the person's own deviation from the clinical prediction


def sample_patients(
    rng: np.random.Generator, n: int, age_mean: float, female_fraction: float
) -> Patients:
    age = _truncated_age(age_mean).rvs(size=n, random_state=rng)
    female = rng.random(n) < female_fraction
    weight = np.clip(weight_mean(age, female) + WEIGHT_SD * rng.standard_normal(n), *WEIGHT_RANGE)
    noise = TSCORE_NOISE_SD * rng.standard_normal(n)
    return Patients(age=age, female=female, weight=weight, tscore_noise=noise)
