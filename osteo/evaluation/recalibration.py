"""Probabilities a clinician can read as risks: prior-shift correction and recalibration on val.

**Prior shift.** Training with ``BCEWithLogitsLoss(pos_weight=w)`` weighs every positive w
times; the loss is minimised by logit(p_w) = logit(p) + log w, where p is the risk in the
training population (the weighting acts like w times more positives; Saerens et al. 2002,
*Neural Computation* 14:21-41; King & Zeng 2001, *Political Analysis* 9:137-163). The
corrected probability is therefore sigmoid(logit(p_w) - log w). AUC is unchanged (a
monotone map); calibration is what changes.

**Recalibration** (optional, fitted on ``val`` only, then applied unchanged to the test sets):
``platt`` (Platt 1999: logistic regression of the label on the logit) or ``isotonic``
(Zadrozny & Elkan 2002: monotone step function, sklearn's IsotonicRegression).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "RECALIBRATION_METHODS",
    "Recalibrator",
    "fit_recalibration",
    "logit",
    "prior_shift_correct",
    "sigmoid",
]

RECALIBRATION_METHODS = ("none", "platt", "isotonic")
_EPS = 1e-7  # as calibration.py: a float32 sigmoid can return exactly 0 or 1


def logit(prob) -> np.ndarray:
    p = np.clip(np.asarray(prob, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def prior_shift_correct(prob, pos_weight: float) -> np.ndarray:
    """Undo the positive-class weight w of training: sigmoid(logit(p) - log w)."""
    if not pos_weight > 0 or not np.isfinite(pos_weight):
        raise ValueError(f"pos_weight must be a positive finite number, got {pos_weight}")
    return sigmoid(logit(prob) - np.log(pos_weight))


@dataclass(frozen=True)
class Recalibrator:
    """A monotone map of probabilities fitted on validation. ``params`` is all it needs, so
    the record in metrics.json rebuilds it (:meth:`from_record`, used by tools/predict.py)."""

    method: str
    params: dict

    def __call__(self, prob) -> np.ndarray:
        prob = np.asarray(prob, dtype=np.float64)
        if self.method == "none":
            return prob
        if self.method == "platt":
            return sigmoid(self.params["intercept"] + self.params["slope"] * logit(prob))
        # IsotonicRegression.predict with out_of_bounds="clip" is this interpolation.
        return np.clip(np.interp(prob, self.params["x"], self.params["y"]), 0.0, 1.0)

    @classmethod
    def from_record(cls, record: dict | None) -> Recalibrator:
        """From metrics.json's ``settings.recalibration`` (None or absent: identity)."""
        if not record or record.get("method", "none") == "none":
            return cls("none", {})
        method = record["method"]
        keys = {"platt": ("intercept", "slope"), "isotonic": ("x", "y")}.get(method)
        if keys is None or any(k not in record for k in keys):
            raise ValueError(f"recalibration record {record!r} lacks {keys} for {method!r}")
        return cls(method, {k: record[k] for k in keys})


def fit_recalibration(method: str, y_val, prob_val) -> Recalibrator:
    """Fit ``method`` (none, platt, isotonic) on validation labels and probabilities."""
    if method not in RECALIBRATION_METHODS:
        raise ValueError(
            f"unknown recalibration {method!r}; expected one of {list(RECALIBRATION_METHODS)}"
        )
    if method == "none":
        return Recalibrator("none", {})
    y = np.asarray(y_val, dtype=np.float64)
    prob = np.asarray(prob_val, dtype=np.float64)
    if y.min() == y.max():
        raise ValueError(
            f"{method} recalibration needs both classes in val; "
            f"all {y.shape[0]} val studies have label {int(y[0])}"
        )
    if method == "platt":
        from osteo.evaluation.calibration import _newton_logistic

        design = np.column_stack([np.ones_like(prob), logit(prob)])
        intercept, slope = _newton_logistic(design, y, offset=np.zeros_like(prob))
        return Recalibrator("platt", {"intercept": float(intercept), "slope": float(slope)})
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(prob, y)
    return Recalibrator(
        "isotonic", {"x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist()}
    )
