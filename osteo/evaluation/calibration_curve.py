"""Calibration per Van Calster et al. (2019), *BMC Medicine* 17:230: slope and intercept with
patient-bootstrap intervals and a smoothed (lowess) calibration curve with a bootstrap band.
No Hosmer-Lemeshow test (its verdict depends on the binning and the sample size).

The curve is statsmodels' lowess of the 0/1 label on the predicted probability (Cleveland
1979; ``frac`` = 2/3, no robustness iterations since the outcome is binary), evaluated on a
fixed grid of probabilities between the 2.5th and 97.5th percentile of the predictions (where
the data are); the band is the pointwise percentile interval over patient resamples.
"""

from __future__ import annotations

import numpy as np

from osteo.evaluation.calibration import calibration_slope_intercept
from osteo.evaluation.clustered import patient_index_bootstrap

__all__ = ["calibration_with_ci", "smoothed_calibration_curve"]

GRID_POINTS = 25
LOWESS_FRAC = 2 / 3


def calibration_with_ci(
    y_true, y_prob, patient_ids=None, *, n_resamples=2000, confidence_level=0.95, seed=0
) -> dict:
    """Slope, intercept and calibration-in-the-large, each with a patient-bootstrap CI."""
    labels = np.asarray(y_true).astype(int)
    prob = np.asarray(y_prob, dtype=float)
    fit = calibration_slope_intercept(labels, prob)

    def stat(idx):
        y, p = labels[idx], prob[idx]
        if y.min() == y.max():
            return [np.nan] * 3
        f = calibration_slope_intercept(y, p)
        return [f.slope, f.intercept, f.calibration_in_the_large]

    result = {
        "calibration_slope": fit.slope,
        "calibration_intercept": fit.intercept,
        "calibration_in_the_large": fit.calibration_in_the_large,
        "calibration_note": fit.note,
    }
    if n_resamples > 0:
        boot = patient_index_bootstrap(
            stat,
            labels,
            patient_ids,
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            seed=seed,
        )
        for j, key in enumerate(
            ("calibration_slope", "calibration_intercept", "calibration_in_the_large")
        ):
            finite = np.isfinite(boot.ci_low[j]) and np.isfinite(result[key])
            result[f"{key}_ci"] = (
                [float(boot.ci_low[j]), float(boot.ci_high[j])] if finite else None
            )
        result["calibration_ci_method"] = f"{boot.unit} bootstrap, percentile"
    return result


def _lowess_on_grid(labels, prob, grid):
    from statsmodels.nonparametric.smoothers_lowess import lowess

    fitted = lowess(labels, prob, frac=LOWESS_FRAC, it=0, xvals=grid)
    return np.clip(fitted, 0.0, 1.0)


def smoothed_calibration_curve(
    y_true, y_prob, patient_ids=None, *, n_resamples=200, confidence_level=0.95, seed=0
) -> dict:
    """``{"grid", "observed", "band_low", "band_high", "method"}`` (lists) for the report
    and plot; the band is None when ``n_resamples`` is 0."""
    labels = np.asarray(y_true).astype(float)
    prob = np.asarray(y_prob, dtype=float)
    low, high = np.percentile(prob, [2.5, 97.5])
    if high <= low:
        return {
            "grid": [],
            "observed": [],
            "band_low": None,
            "band_high": None,
            "method": "not drawn: all predictions (nearly) equal",
        }
    grid = np.linspace(low, high, GRID_POINTS)
    curve = {
        "grid": grid.tolist(),
        "observed": _lowess_on_grid(labels, prob, grid).tolist(),
        "band_low": None,
        "band_high": None,
        "method": f"lowess (frac {LOWESS_FRAC:.2f})",
    }
    if n_resamples > 0:
        boot = patient_index_bootstrap(
            lambda i: _lowess_on_grid(labels[i], prob[i], grid),
            labels.astype(int),
            patient_ids,
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            seed=seed,
        )
        curve["band_low"] = np.nan_to_num(boot.ci_low, nan=0.0).tolist()
        curve["band_high"] = np.nan_to_num(boot.ci_high, nan=1.0).tolist()
        curve["method"] += f", {boot.unit} bootstrap band ({n_resamples} resamples)"
    return curve
