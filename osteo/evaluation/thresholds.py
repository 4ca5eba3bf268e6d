"""ROC points, a decision threshold chosen on validation, and metrics at that threshold.

A study is called positive when ``score >= threshold``. The threshold is always one of the
validation scores (the lowest score called positive), so it can be written down and applied
unchanged to the test sets; choosing it on a test set would bias that test set's results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import ndtri  # inverse normal CDF; scipy.stats is slow to import

from osteo.evaluation.stats import check_binary_inputs

__all__ = [
    "BinaryMetrics",
    "binary_metrics_at_threshold",
    "roc_curve",
    "select_threshold",
    "wilson_interval",
]

THRESHOLD_METHODS = ("youden", "sensitivity")


def roc_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC: ``(fpr, tpr, thresholds)`` for every distinct score, highest first.

    The first point is (0, 0) with threshold +inf; the last is (1, 1). The trapezoidal area
    under these points equals the Mann-Whitney AUC with ties counted 1/2.
    """
    labels, scores = check_binary_inputs(y_true, y_score)
    thresholds = np.unique(scores)[::-1]
    positives = np.sort(scores[labels == 1])
    negatives = np.sort(scores[labels == 0])
    # Number of positives (negatives) with score >= t, for every threshold t at once.
    tp = positives.shape[0] - np.searchsorted(positives, thresholds, side="left")
    fp = negatives.shape[0] - np.searchsorted(negatives, thresholds, side="left")
    tpr = np.concatenate([[0.0], tp / positives.shape[0]])
    fpr = np.concatenate([[0.0], fp / negatives.shape[0]])
    return fpr, tpr, np.concatenate([[np.inf], thresholds])


def select_threshold(
    y_true, y_score, method: str = "youden", target_sensitivity: float | None = None
) -> float:
    """Decision threshold from validation data.

    ``"youden"``: maximise Youden's J = sensitivity + specificity - 1 (ties: the highest such
    threshold, i.e. the most specific). ``"sensitivity"``: the highest threshold whose
    sensitivity is at least ``target_sensitivity`` (screening use: a fixed miss rate).
    """
    fpr, tpr, thresholds = roc_curve(y_true, y_score)
    fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]  # drop the +inf "nobody" point
    if method == "youden":
        if target_sensitivity is not None:
            raise ValueError("target_sensitivity is only used with method='sensitivity'")
        return float(thresholds[int(np.argmax(tpr - fpr))])  # argmax: first = highest
    if method == "sensitivity":
        if target_sensitivity is None or not 0 < target_sensitivity <= 1:
            raise ValueError(
                f"method='sensitivity' needs target_sensitivity in (0, 1], got {target_sensitivity}"
            )
        # tpr is non-decreasing as the threshold falls, and reaches 1 at the lowest score.
        return float(thresholds[int(np.argmax(tpr >= target_sensitivity - 1e-12))])
    raise ValueError(f"unknown threshold method {method!r}; expected one of {THRESHOLD_METHODS}")


def wilson_interval(
    successes: int, total: int, confidence_level: float = 0.95
) -> tuple[float, float]:
    """Wilson (1927) score interval for a binomial proportion ``successes / total``.

    Unlike the Wald interval it stays inside [0, 1] and keeps close to its nominal coverage
    for small counts and proportions near 0 or 1 (sensitivity of a small positive class).
    """
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    if total <= 0:
        raise ValueError(f"Wilson interval needs total > 0, got {total}")
    if not 0 <= successes <= total:
        raise ValueError(f"successes must be in [0, total={total}], got {successes}")
    z = ndtri(0.5 + confidence_level / 2)
    p = successes / total
    denominator = 1 + z**2 / total
    center = (p + z**2 / (2 * total)) / denominator
    half = z / denominator * np.sqrt(p * (1 - p) / total + z**2 / (4 * total**2))
    # Clip rounding noise: at p = 0 or 1 the bound is exactly 0 or 1.
    return float(max(center - half, 0.0)), float(min(center + half, 1.0))


@dataclass(frozen=True)
class BinaryMetrics:
    """Confusion counts and rates at one threshold, each rate with its Wilson interval.

    A rate whose denominator is 0 (e.g. PPV when nobody is called positive) is NaN.
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]
    ppv: float
    ppv_ci: tuple[float, float]
    npv: float
    npv_ci: tuple[float, float]
    accuracy: float
    confidence_level: float

    def to_dict(self) -> dict:
        return asdict(self)


def binary_metrics_at_threshold(
    y_true, y_score, threshold: float, confidence_level: float = 0.95
) -> BinaryMetrics:
    """Sensitivity, specificity, PPV, NPV (Wilson CIs) calling ``score >= threshold`` positive."""
    labels, scores = check_binary_inputs(y_true, y_score)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    called = scores >= threshold
    positive = labels == 1
    tp = int(np.sum(called & positive))
    fp = int(np.sum(called & ~positive))
    tn = int(np.sum(~called & ~positive))
    fn = int(np.sum(~called & positive))

    def rate(successes: int, total: int) -> tuple[float, tuple[float, float]]:
        if total == 0:
            return float("nan"), (float("nan"), float("nan"))
        return successes / total, wilson_interval(successes, total, confidence_level)

    sensitivity, sensitivity_ci = rate(tp, tp + fn)
    specificity, specificity_ci = rate(tn, tn + fp)
    ppv, ppv_ci = rate(tp, tp + fp)
    npv, npv_ci = rate(tn, tn + fn)
    return BinaryMetrics(
        float(threshold),
        tp,
        fp,
        tn,
        fn,
        sensitivity,
        sensitivity_ci,
        specificity,
        specificity_ci,
        ppv,
        ppv_ci,
        npv,
        npv_ci,
        (tp + tn) / labels.shape[0],
        confidence_level,
    )
