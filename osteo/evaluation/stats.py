"""AUC with DeLong's variance, the paired DeLong test, Holm's correction and a patient bootstrap.

Everything here works on plain arrays (numpy/scipy only) so that it can be checked against
independent computations; reading run folders lives in :mod:`osteo.evaluation.runs`.

Conventions: ``y_true`` holds 0/1 labels (1 = osteoporosis), ``y_score`` any real score where a
higher value means "more likely positive". Ties between a positive and a negative count 1/2,
so AUC is the Mann-Whitney probability P(score_pos > score_neg) + P(tie) / 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# scipy.special (not scipy.stats, which takes ~1 s to import) for the normal distribution:
# ndtr is its CDF, ndtri the inverse CDF.
from scipy.special import ndtr, ndtri

__all__ = [
    "AUCEstimate",
    "BootstrapResult",
    "PairedDeLongResult",
    "bootstrap_auc_ci",
    "check_binary_inputs",
    "delong_auc",
    "delong_covariance",
    "delong_paired_test",
    "holm_adjust",
    "midranks",
    "paired_auc_difference",
    "wald_auc_interval",
    "patient_bootstrap",
    "roc_auc",
]


def check_binary_inputs(
    y_true: Sequence | np.ndarray,
    y_score: Sequence | np.ndarray,
    *,
    require_both_classes: bool = True,
    score_name: str = "y_score",
) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and scores; return them as ``(int8 labels, float64 scores)``.

    Raises ValueError naming the problem: mismatched lengths, empty input, labels other than
    0/1, NaN or infinite scores, and (by default) only one class present.
    """
    labels = np.asarray(y_true)
    scores = np.asarray(y_score, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1:
        raise ValueError(
            f"y_true and {score_name} must be 1-D, got shapes {labels.shape} and {scores.shape}"
        )
    if labels.shape[0] != scores.shape[0]:
        raise ValueError(
            f"y_true and {score_name} have different lengths "
            f"({labels.shape[0]} vs {scores.shape[0]})"
        )
    if labels.shape[0] == 0:
        raise ValueError(f"no studies: y_true and {score_name} are empty")
    n_bad_scores = int(np.count_nonzero(~np.isfinite(scores)))
    if n_bad_scores:
        first = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ValueError(
            f"{score_name} contains {n_bad_scores} NaN or infinite value(s) "
            f"(first at position {first}); drop or fix those studies first"
        )
    try:
        numeric_labels = labels.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"y_true must hold 0/1 labels, got dtype {labels.dtype}") from err
    if not np.all(np.isin(numeric_labels, (0.0, 1.0))):
        bad = np.unique(labels[~np.isin(numeric_labels, (0.0, 1.0))])[:5]
        raise ValueError(
            f"y_true must hold only 0/1 labels (NaN not allowed); found {bad.tolist()}"
        )
    labels = numeric_labels.astype(np.int8)
    if require_both_classes:
        n_pos = int(labels.sum())
        if n_pos == 0 or n_pos == labels.shape[0]:
            only = "positive (1)" if n_pos else "negative (0)"
            raise ValueError(
                f"only one class present in y_true: all {labels.shape[0]} studies "
                f"are {only}; AUC and sensitivity/specificity need both classes"
            )
    return labels, scores


def midranks(values) -> np.ndarray:
    """1-based ranks of a 1-D array where tied values share the mean of their ranks.

    Midranks make the rank-sum AUC count a positive-negative tie as 1/2 (Sun & Xu 2014, Alg. 1).
    """
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], values.shape[0])
    # The tie group at sorted positions [start, end) holds ranks start+1 .. end: mean below.
    ranks = np.empty(values.shape[0], dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2)[np.cumsum(starts_group) - 1]
    return ranks


def _rank_rows(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([midranks(row) for row in matrix])


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve (Mann-Whitney form, ties count 1/2) from midranks."""
    labels, scores = check_binary_inputs(y_true, y_score)
    return _auc_unchecked(labels, scores)


def _delong_placements(labels: np.ndarray, scores: np.ndarray):
    """Sun & Xu (2014) fast DeLong: AUCs and structural components from midranks.

    ``scores`` has shape (k, N) for k score vectors on the same N studies. Returns
    ``aucs`` (k,), ``v10`` (k, m): for each positive the fraction of negatives it outranks
    (ties 1/2), and ``v01`` (k, n): for each negative the fraction of positives that outrank
    it. O(k N log N) instead of the O(k m n) pairwise definition of DeLong et al. (1988).
    """
    positives = scores[:, labels == 1]
    negatives = scores[:, labels == 0]
    m, n = positives.shape[1], negatives.shape[1]
    rank_pos = _rank_rows(positives)  # midranks within the positives
    rank_neg = _rank_rows(negatives)  # midranks within the negatives
    rank_all = _rank_rows(np.concatenate([positives, negatives], axis=1))
    aucs = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    # A positive's rank among all minus its rank among positives = negatives below it (+ ties/2).
    v10 = (rank_all[:, :m] - rank_pos) / n
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    return aucs, v10, v01


def delong_covariance(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance matrix (k, k) for k score vectors.

    ``scores`` is (k, N) (or (N,) for one vector) on the same N studies as ``y_true``.
    Needs at least 2 positives and 2 negatives (the variance of the structural components
    uses ``m - 1`` and ``n - 1`` in the denominators, as in DeLong et al. 1988).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    labels = None
    for row in scores:  # validates every score vector, with the same error messages
        labels, _ = check_binary_inputs(y_true, row)
    m = int(labels.sum())
    n = labels.shape[0] - m
    if m < 2 or n < 2:
        raise ValueError(
            f"DeLong variance needs at least 2 positive and 2 negative studies, "
            f"got {m} positive and {n} negative"
        )
    aucs, v10, v01 = _delong_placements(labels, scores)
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


@dataclass(frozen=True)
class AUCEstimate:
    """An AUC with its DeLong variance and a Wald confidence interval clipped to [0, 1]."""

    auc: float
    variance: float
    ci_low: float
    ci_high: float
    confidence_level: float
    n_positive: int
    n_negative: int

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


def delong_auc(y_true, y_score, confidence_level: float = 0.95) -> AUCEstimate:
    """AUC, its DeLong variance and ``confidence_level`` CI: AUC +/- z * SE, clipped to [0, 1].

    The interval is on the AUC scale as in pROC's ``ci.auc(method="delong")``. A perfectly
    separating score has variance 0 and the degenerate interval [1, 1]; the patient bootstrap
    (:func:`bootstrap_auc_ci`) is the better summary in that case.
    """
    _check_level(confidence_level)
    labels, scores = check_binary_inputs(y_true, y_score)
    aucs, cov = delong_covariance(labels, scores)
    m = int(labels.sum())
    return AUCEstimate(
        *wald_auc_interval(aucs, cov, confidence_level),
        confidence_level,
        m,
        labels.shape[0] - m,
    )


@dataclass(frozen=True)
class PairedDeLongResult:
    """Two-sided paired DeLong test of H0: AUC_a == AUC_b on the same studies."""

    auc_a: float
    auc_b: float
    difference: float  # auc_a - auc_b
    variance: float  # variance of the difference: var_a + var_b - 2 cov_ab
    z: float
    p_value: float
    n: int


def wald_auc_interval(
    aucs: np.ndarray, cov: np.ndarray, confidence_level: float
) -> tuple[float, float, float, float]:
    """``(auc, variance, lower, upper)``: the normal-approximation interval of one AUC from its
    (DeLong or clustered) variance, clipped to [0, 1]."""
    auc, variance = float(aucs[0]), float(max(cov[0, 0], 0.0))
    half_width = ndtri(0.5 + confidence_level / 2) * np.sqrt(variance)
    return auc, variance, max(auc - half_width, 0.0), min(auc + half_width, 1.0)


def paired_auc_difference(
    aucs: np.ndarray, cov: np.ndarray
) -> tuple[float, float, float, float, float, float]:
    """Two-sided z test of ``aucs[0] - aucs[1]`` with their (DeLong) covariance ``cov``:
    ``(auc_a, auc_b, difference, variance, z, p)``, the fields the paired results share."""
    difference = float(aucs[0] - aucs[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    # Identical rankings give variance 0 up to rounding; treat tiny values as exactly 0.
    if variance <= 1e-15:
        if abs(difference) <= 1e-12:
            z, p_value = 0.0, 1.0
        else:  # both curves are constant-variance step functions; any difference is certain
            z, p_value = float(np.copysign(np.inf, difference)), 0.0
    else:
        z = difference / np.sqrt(variance)
        p_value = float(2 * ndtr(-abs(z)))
    return float(aucs[0]), float(aucs[1]), difference, max(variance, 0.0), float(z), p_value


def delong_paired_test(y_true, y_score_a, y_score_b) -> PairedDeLongResult:
    """Paired DeLong test of two score vectors (two models, or a model and a reader).

    Both vectors must score the same studies in the same order as ``y_true``. The correlation
    between the two AUCs (same studies) enters through their DeLong covariance, which is what
    makes the test more powerful than comparing two independent confidence intervals.
    """
    labels, a = check_binary_inputs(y_true, y_score_a, score_name="y_score_a")
    _, b = check_binary_inputs(labels, y_score_b, score_name="y_score_b")
    aucs, cov = delong_covariance(labels, np.vstack([a, b]))
    return PairedDeLongResult(*paired_auc_difference(aucs, cov), int(labels.shape[0]))


def holm_adjust(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order.

    The i-th smallest p-value is multiplied by (k - i + 1), then a running maximum keeps the
    adjusted values monotone and they are capped at 1. Reject H_i at level alpha when the
    adjusted p-value is <= alpha; this controls the family-wise error rate.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p_values must be finite numbers in [0, 1], got {p.tolist()}")
    k = p.shape[0]
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((k - np.arange(k)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap interval of a statistic; ``distribution`` holds the resamples."""

    estimate: float
    ci_low: float
    ci_high: float
    confidence_level: float
    n_resamples: int  # resamples used (single-class resamples are skipped, see n_skipped)
    n_skipped: int
    unit: str  # "patient" or "study": what was resampled
    distribution: np.ndarray

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


def _patient_groups(patient_ids, n_studies: int):
    """Studies grouped by patient: (order of studies by patient, first index, count)."""
    if patient_ids is None:
        return np.arange(n_studies), np.arange(n_studies), np.ones(n_studies, dtype=np.int64)
    ids = np.asarray(patient_ids)
    if ids.shape != (n_studies,):
        raise ValueError(
            f"patient_ids has length {ids.shape[0] if ids.ndim else 0}, "
            f"expected one per study ({n_studies})"
        )
    if ids.dtype.kind in "fc" and np.any(np.isnan(ids)):
        raise ValueError("patient_ids contains NaN; every study needs its patient")
    if ids.dtype == object and any(v is None or v != v for v in ids):
        raise ValueError("patient_ids contains missing values; every study needs its patient")
    _, codes = np.unique(ids.astype(str) if ids.dtype == object else ids, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


def patient_bootstrap(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    y_true,
    y_score,
    patient_ids=None,
    *,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
    stratify: bool = True,
) -> BootstrapResult:
    """Percentile bootstrap CI of ``statistic(labels, scores)`` resampling patients.

    Repeat radiographs of one patient are correlated, so the patient (all of their studies
    together) is the unit drawn with replacement; without ``patient_ids`` each study is its own
    patient. With ``stratify`` the positive patients (any positive study) and the negative
    patients are resampled separately, each keeping its size, so every resample has both
    classes and the prevalence of the data. Unstratified resamples that happen to hold one
    class only are skipped and counted in ``n_skipped``. Seeded: same inputs, same interval.
    """
    _check_level(confidence_level)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    labels, scores = check_binary_inputs(y_true, y_score)
    estimate = float(statistic(labels, scores))
    order, starts, counts = _patient_groups(patient_ids, labels.shape[0])
    # A patient is positive when any of their studies is: label changes over time are rare
    # and stratifying on "ever positive" keeps every positive study in the positive stratum.
    patient_positive = np.maximum.reduceat(labels[order], starts) > 0
    strata = (
        [np.flatnonzero(patient_positive), np.flatnonzero(~patient_positive)]
        if stratify
        else [np.arange(counts.shape[0])]
    )
    rng = np.random.default_rng(seed)
    values, skipped = [], 0
    for _ in range(n_resamples):
        drawn = np.concatenate([rng.choice(s, size=s.shape[0], replace=True) for s in strata])
        # Expand drawn patients into their studies without a Python loop per patient.
        lengths = counts[drawn]
        offsets = np.repeat(starts[drawn] - np.cumsum(lengths) + lengths, lengths)
        studies = order[offsets + np.arange(lengths.sum())]
        sample_labels = labels[studies]
        if sample_labels.min() == sample_labels.max():
            skipped += 1
            continue
        values.append(statistic(sample_labels, scores[studies]))
    if not values:
        raise ValueError("every bootstrap resample held one class only; use stratify=True")
    distribution = np.asarray(values, dtype=np.float64)
    alpha = 1 - confidence_level
    low, high = np.percentile(distribution, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return BootstrapResult(
        estimate,
        float(low),
        float(high),
        confidence_level,
        distribution.shape[0],
        skipped,
        "study" if patient_ids is None else "patient",
        distribution,
    )


def bootstrap_auc_ci(y_true, y_score, patient_ids=None, **kwargs) -> BootstrapResult:
    """Patient-level percentile bootstrap CI of the AUC (see :func:`patient_bootstrap`)."""
    return patient_bootstrap(_auc_unchecked, y_true, y_score, patient_ids, **kwargs)


def _auc_unchecked(labels: np.ndarray, scores: np.ndarray) -> float:
    # Inputs were validated once up front; skipping it per resample keeps 2000 resamples fast.
    m = int(labels.sum())
    ranks = midranks(scores)
    return float((ranks[labels == 1].sum() - m * (m + 1) / 2) / (m * (labels.shape[0] - m)))


def _check_level(confidence_level: float) -> None:
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
