"""Calibration of predicted probabilities: reliability bins, ECE, calibration slope/intercept.

Discrimination (AUC) says whether positives score higher; calibration says whether a
predicted 30% means 30% of such patients have osteoporosis, which is what a clinician reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from osteo.evaluation.stats import check_binary_inputs

__all__ = [
    "CalibrationFit",
    "ReliabilityBins",
    "calibration_slope_intercept",
    "expected_calibration_error",
    "reliability_bins",
]

BIN_STRATEGIES = ("uniform", "quantile")
# Probabilities are clipped away from 0 and 1 before the logit: a float32 sigmoid can return
# exactly 0 or 1, whose logit is infinite. 1e-7 is below float32's resolution near 0.5.
_EPS = 1e-7


def _check_probabilities(y_true, y_prob, require_both_classes: bool):
    labels, prob = check_binary_inputs(
        y_true, y_prob, require_both_classes=require_both_classes, score_name="y_prob"
    )
    if np.any((prob < 0) | (prob > 1)):
        raise ValueError(
            f"y_prob must be probabilities in [0, 1]; found values from "
            f"{prob.min():.4g} to {prob.max():.4g}"
        )
    return labels, prob


@dataclass(frozen=True)
class ReliabilityBins:
    """Per non-empty bin: its edges, the mean predicted probability, the observed positive rate."""

    bin_lower: np.ndarray
    bin_upper: np.ndarray
    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    count: np.ndarray

    def to_dict(self) -> dict:
        return {
            key: getattr(self, key).tolist()
            for key in ("bin_lower", "bin_upper", "mean_predicted", "observed_rate", "count")
        }


def reliability_bins(
    y_true, y_prob, n_bins: int = 10, strategy: str = "uniform"
) -> ReliabilityBins:
    """Bin the probabilities; ``"uniform"``: equal-width bins on [0, 1], ``"quantile"``:
    equal-count bins (better when predictions crowd near the prevalence). Empty bins are left
    out. Bins are half-open [lower, upper) except the last, which includes 1.
    """
    labels, prob = _check_probabilities(y_true, y_prob, require_both_classes=False)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if strategy == "uniform":
        edges = np.round(np.linspace(0.0, 1.0, n_bins + 1), 12)  # 0.3, not 0.30000000000000004
    elif strategy == "quantile":
        edges = np.unique(np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1)))
        edges[0], edges[-1] = 0.0, 1.0
        if edges.shape[0] < 2:  # every probability identical
            edges = np.array([0.0, 1.0])
    else:
        raise ValueError(f"unknown bin strategy {strategy!r}; expected one of {BIN_STRATEGIES}")
    index = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, edges.shape[0] - 2)
    count = np.bincount(index, minlength=edges.shape[0] - 1)
    filled = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(index, weights=prob, minlength=count.shape[0]) / count
        observed = np.bincount(index, weights=labels, minlength=count.shape[0]) / count
    return ReliabilityBins(
        edges[:-1][filled],
        edges[1:][filled],
        mean_predicted[filled],
        observed[filled],
        count[filled],
    )


def expected_calibration_error(
    y_true, y_prob, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """ECE (Naeini et al. 2015): sum over bins of (bin size / N) * |observed - mean predicted|."""
    bins = reliability_bins(y_true, y_prob, n_bins, strategy)
    weights = bins.count / bins.count.sum()
    return float(np.sum(weights * np.abs(bins.observed_rate - bins.mean_predicted)))


@dataclass(frozen=True)
class CalibrationFit:
    """Logistic recalibration of the outcome on logit(p) (Cox 1958).

    ``slope`` and ``intercept``: ``logit P(y=1) = intercept + slope * logit(p)``; a perfectly
    calibrated model has slope 1 and intercept 0; slope < 1 means overconfident predictions.
    ``calibration_in_the_large``: the intercept with the slope fixed at 1 (logit(p) as offset),
    > 0 when the model under-predicts the overall risk. NaN with a ``note`` when the
    maximum-likelihood slope does not exist (perfect separation, constant predictions).
    """

    slope: float
    intercept: float
    calibration_in_the_large: float
    note: str = ""


def _newton_logistic(design: np.ndarray, labels: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Maximum-likelihood logistic coefficients by Newton-Raphson with step halving."""
    coef = np.zeros(design.shape[1])

    def loglik(c):
        eta = design @ c + offset
        return float(np.sum(labels * eta - np.logaddexp(0.0, eta)))

    current = loglik(coef)
    for _ in range(100):
        mu = 1.0 / (1.0 + np.exp(-(design @ coef + offset)))
        gradient = design.T @ (labels - mu)
        hessian = (design * (mu * (1 - mu))[:, None]).T @ design
        step = np.linalg.solve(hessian, gradient)
        # The log-likelihood is concave, so halving the step always finds an ascent.
        for _ in range(30):
            candidate = loglik(coef + step)
            if candidate >= current - 1e-12:
                break
            step = step / 2
        coef, previous, current = coef + step, current, candidate
        if np.max(np.abs(step)) < 1e-10 or abs(current - previous) < 1e-12:
            break
    return coef


def calibration_slope_intercept(y_true, y_prob) -> CalibrationFit:
    """Calibration slope and intercept by logistic regression of the label on logit(p)."""
    labels, prob = _check_probabilities(y_true, y_prob, require_both_classes=True)
    logit = np.log(np.clip(prob, _EPS, 1 - _EPS)) - np.log1p(-np.clip(prob, _EPS, 1 - _EPS))
    (in_the_large,) = _newton_logistic(np.ones((labels.shape[0], 1)), labels, offset=logit)
    positives, negatives = logit[labels == 1], logit[labels == 0]
    # In one dimension the slope's MLE is finite exactly when the classes overlap: if every
    # positive scores >= every negative (or <=), the likelihood keeps rising as slope -> inf.
    if np.ptp(logit) == 0:
        note = "all predictions are equal: the slope is not identifiable"
    elif positives.min() >= negatives.max() or positives.max() <= negatives.min():
        note = "the predictions separate the classes perfectly: the slope is infinite"
    else:
        design = np.column_stack([np.ones_like(logit), logit])
        intercept, slope = _newton_logistic(design, labels, offset=np.zeros_like(logit))
        return CalibrationFit(float(slope), float(intercept), float(in_the_large))
    return CalibrationFit(float("nan"), float("nan"), float(in_the_large), note)
