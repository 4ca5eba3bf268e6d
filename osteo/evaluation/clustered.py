"""Inference clustered by patient: Obuchowski's AUC variance and a paired patient bootstrap.

About one patient in seven has two radiographs; their studies are correlated, so study-level
DeLong intervals are too narrow. Obuchowski (1997), *Biometrics* 53:567-578, generalises
DeLong's structural components to clusters: each patient contributes the sum of the
components of their studies, and the variance is taken over patients. With one study per
patient it is DeLong's variance exactly (tested to 1e-12).

Notation (per patient i): m_i positive and n_i negative studies, M = sum m_i, N = sum n_i.
For a positive study X, V10(X) is the fraction of the N negatives it outranks (ties 1/2); for a
negative Y, V01(Y) the fraction of the M positives that outrank it (DeLong's components). With
V10_i, V01_i the patient sums, a_i = V10_i - m_i AUC and b_i = V01_i - n_i AUC:

    Var(AUC) = I10/(I10-1) sum a_i^2 / M^2 + I01/(I01-1) sum b_i^2 / N^2
               + 2 I/(I-1) sum a_i b_i / (M N)

where I10 (I01) counts patients with at least one positive (negative) study and I all
patients. The covariance of two AUCs on the same studies replaces a_i^2 by a_i^r a_i^s,
b_i^2 by b_i^r b_i^s and 2 a_i b_i by a_i^r b_i^s + b_i^r a_i^s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from osteo.evaluation.stats import (
    _delong_placements,
    check_binary_inputs,
    paired_auc_difference,
    wald_auc_interval,
)

__all__ = [
    "RATE_NAMES",
    "ClusteredAUC",
    "ClusteredPairedResult",
    "IndexBootstrap",
    "bootstrap_rates",
    "clustered_auc",
    "clustered_covariance",
    "clustered_paired_test",
    "patient_codes",
    "patient_index_bootstrap",
]


def patient_codes(patient_ids, n_studies: int) -> np.ndarray:
    """Integer code 0..I-1 of each study's patient; each study its own patient when None."""
    if patient_ids is None:
        return np.arange(n_studies)
    ids = np.asarray(patient_ids)
    if ids.shape != (n_studies,):
        raise ValueError(
            f"patient_ids has length {ids.shape[0] if ids.ndim else 0}, "
            f"expected one per study ({n_studies})"
        )
    if ids.dtype == object and any(v is None or v != v for v in ids):
        raise ValueError("patient_ids contains missing values; every study needs its patient")
    if ids.dtype.kind in "fc" and np.any(np.isnan(ids)):
        raise ValueError("patient_ids contains NaN; every study needs its patient")
    _, codes = np.unique(ids.astype(str) if ids.dtype == object else ids, return_inverse=True)
    return codes.reshape(-1)


def clustered_covariance(y_true, scores, patient_ids=None):
    """AUCs (k,) and their Obuchowski (1997) clustered covariance (k, k).

    ``scores`` is (k, N) or (N,) on the same studies as ``y_true``; ``patient_ids`` (N,)
    names each study's patient (None: every study its own patient, which is DeLong).
    Needs at least 2 patients with a positive study and 2 with a negative one.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    labels = None
    for row in scores:
        labels, _ = check_binary_inputs(y_true, row)
    codes = patient_codes(patient_ids, labels.shape[0])
    n_patients = int(codes.max()) + 1
    pos, neg = labels == 1, labels == 0
    m, n = int(pos.sum()), int(neg.sum())
    i10 = np.unique(codes[pos]).shape[0]
    i01 = np.unique(codes[neg]).shape[0]
    if i10 < 2 or i01 < 2:
        raise ValueError(
            f"the clustered AUC variance needs at least 2 patients with a positive "
            f"and 2 with a negative study, got {i10} and {i01}"
        )
    aucs, v10, v01 = _delong_placements(labels, scores)
    k = scores.shape[0]
    a = np.zeros((k, n_patients))
    b = np.zeros((k, n_patients))
    m_i = np.bincount(codes[pos], minlength=n_patients)
    n_i = np.bincount(codes[neg], minlength=n_patients)
    for r in range(k):
        a[r] = np.bincount(codes[pos], weights=v10[r], minlength=n_patients) - m_i * aucs[r]
        b[r] = np.bincount(codes[neg], weights=v01[r], minlength=n_patients) - n_i * aucs[r]
    # Patients with no positive study have a_i = 0 (and likewise b_i): summing over all
    # patients equals summing over the I10 (I01) patients of the formula.
    cov = (i10 / (i10 - 1)) * (a @ a.T) / m**2 + (i01 / (i01 - 1)) * (b @ b.T) / n**2
    if n_patients > 1:
        cross = a @ b.T
        cov = cov + (n_patients / (n_patients - 1)) * (cross + cross.T) / (m * n)
    return aucs, cov


@dataclass(frozen=True)
class ClusteredAUC:
    """An AUC with its clustered variance and a Wald CI clipped to [0, 1]."""

    auc: float
    variance: float
    ci_low: float
    ci_high: float
    confidence_level: float
    n_patients: int
    method: str  # "obuchowski" (patients as clusters) or "delong" (one study per patient)

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


def clustered_auc(
    y_true, y_score, patient_ids=None, confidence_level: float = 0.95
) -> ClusteredAUC:
    """AUC +/- z SE with Obuchowski's clustered variance, clipped to [0, 1] (as pROC)."""
    labels, scores = check_binary_inputs(y_true, y_score)
    aucs, cov = clustered_covariance(labels, scores, patient_ids)
    codes = patient_codes(patient_ids, labels.shape[0])
    n_patients = int(codes.max()) + 1
    method = "obuchowski" if patient_ids is not None else "delong"
    return ClusteredAUC(
        *wald_auc_interval(aucs, cov, confidence_level),
        confidence_level,
        n_patients,
        method,
    )


@dataclass(frozen=True)
class ClusteredPairedResult:
    """Two-sided test of H0: AUC_a == AUC_b on the same studies, clustered by patient."""

    auc_a: float
    auc_b: float
    difference: float
    variance: float
    z: float
    p_value: float
    n: int
    n_patients: int


def clustered_paired_test(y_true, y_score_a, y_score_b, patient_ids=None) -> ClusteredPairedResult:
    """Obuchowski's paired comparison of two correlated clustered AUCs (paired DeLong when
    every patient has one study)."""
    labels, a = check_binary_inputs(y_true, y_score_a, score_name="y_score_a")
    _, b = check_binary_inputs(labels, y_score_b, score_name="y_score_b")
    aucs, cov = clustered_covariance(labels, np.vstack([a, b]), patient_ids)
    n_patients = int(patient_codes(patient_ids, labels.shape[0]).max()) + 1
    return ClusteredPairedResult(
        *paired_auc_difference(aucs, cov), int(labels.shape[0]), n_patients
    )


@dataclass(frozen=True)
class IndexBootstrap:
    """Percentile patient-bootstrap interval(s) of a statistic returning one or more values."""

    estimate: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_resamples: int
    n_skipped: int
    unit: str
    method: str = "patient bootstrap, percentile"


def patient_index_bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray | float],
    labels: np.ndarray,
    patient_ids=None,
    *,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> IndexBootstrap:
    """Percentile CI of ``statistic(study_indices)`` over patient resamples.

    ``statistic`` receives the indices of the resampled studies (a patient drawn twice
    contributes their studies twice) and returns a number or a vector (NaN where undefined in
    a resample: those are left out of that component's interval). Patients are drawn with
    replacement separately among those with any positive study and the others, so every
    resample keeps both classes and the prevalence (as :func:`stats.patient_bootstrap`).
    The statistic's values of one resample stay together, so differences are paired.
    """
    labels = np.asarray(labels).astype(np.int8)
    codes = patient_codes(patient_ids, labels.shape[0])
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    positive = np.bincount(codes, weights=labels, minlength=counts.shape[0]) > 0
    strata = [s for s in (np.flatnonzero(positive), np.flatnonzero(~positive)) if s.size]
    estimate = np.atleast_1d(np.asarray(statistic(np.arange(labels.shape[0])), dtype=float))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        drawn = np.concatenate([rng.choice(s, size=s.shape[0], replace=True) for s in strata])
        lengths = counts[drawn]
        offsets = np.repeat(starts[drawn] - np.cumsum(lengths) + lengths, lengths)
        values.append(
            np.atleast_1d(
                np.asarray(statistic(order[offsets + np.arange(lengths.sum())]), dtype=float)
            )
        )
    distribution = np.vstack(values) if values else np.empty((0, estimate.shape[0]))
    alpha = 1 - confidence_level
    low = np.full(estimate.shape, np.nan)
    high = np.full(estimate.shape, np.nan)
    for j in range(estimate.shape[0]):
        finite = distribution[:, j][np.isfinite(distribution[:, j])]
        if finite.size:
            low[j], high[j] = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    skipped = int(np.sum(~np.all(np.isfinite(distribution), axis=1)))
    return IndexBootstrap(
        estimate, low, high, len(values), skipped, "study" if patient_ids is None else "patient"
    )


RATE_NAMES = ("sensitivity", "specificity", "ppv", "npv")


def _rates(labels: np.ndarray, positive_call: np.ndarray) -> np.ndarray:
    """Sensitivity, specificity, PPV, NPV (NaN where the denominator is 0)."""
    tp = np.sum(positive_call & (labels == 1))
    fp = np.sum(positive_call & (labels == 0))
    fn = np.sum(~positive_call & (labels == 1))
    tn = np.sum(~positive_call & (labels == 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array(
            [tp / (tp + fn), tn / (tn + fp), tp / (tp + fp), tn / (tn + fn)], dtype=float
        )


def bootstrap_rates(
    y_true,
    y_prob,
    threshold: float,
    patient_ids=None,
    *,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float] | None]:
    """Patient-bootstrap percentile CIs of sensitivity, specificity, PPV and NPV at a fixed
    threshold (positive when probability >= threshold); None where never defined."""
    labels, prob = check_binary_inputs(
        y_true, y_prob, require_both_classes=False, score_name="y_prob"
    )
    calls = prob >= threshold
    boot = patient_index_bootstrap(
        lambda idx: _rates(labels[idx], calls[idx]),
        labels,
        patient_ids,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        seed=seed,
    )
    return {
        name: (None if not np.isfinite(lo) else (float(lo), float(hi)))
        for name, lo, hi in zip(RATE_NAMES, boot.ci_low, boot.ci_high, strict=True)
    }
