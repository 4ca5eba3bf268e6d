"""Decision curve analysis: net benefit of acting on the model over a range of thresholds.

Vickers & Elkin (2006), *Medical Decision Making* 26:565-574. At a threshold probability p_t
(the risk at which a clinician would refer for DXA / treat), a patient is called positive when
the predicted probability >= p_t, and

    net benefit = TP/N - FP/N * p_t / (1 - p_t)

i.e. true positives minus false positives weighted by the odds of the threshold (the harm of
an unnecessary referral relative to the benefit of a needed one). "Treat all" has net benefit
prevalence - (1 - prevalence) p_t / (1 - p_t); "treat none" has 0. A model is useful at p_t
where its curve lies above both. Meaningful only for calibrated probabilities (see
recalibration.py), since p_t is read as a risk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from osteo.evaluation.stats import check_binary_inputs

__all__ = ["DEFAULT_DCA_THRESHOLDS", "dca_thresholds", "decision_curve", "net_benefit"]


def dca_thresholds(maximum: float = 0.6, step: float = 0.01) -> tuple[float, ...]:
    """Threshold probabilities step, 2 step, ..., maximum (rounded to 1e-6)."""
    count = int(round(maximum / step))
    return tuple(round(step * k, 6) for k in range(1, count + 1))


DEFAULT_DCA_THRESHOLDS = dca_thresholds()


def net_benefit(y_true, y_prob, threshold: float) -> float:
    """Net benefit of calling positive every study with probability >= ``threshold``."""
    if not 0 < threshold < 1:
        raise ValueError(f"a DCA threshold must be in (0, 1), got {threshold}")
    labels, prob = check_binary_inputs(
        y_true, y_prob, require_both_classes=False, score_name="y_prob"
    )
    calls = prob >= threshold
    n = labels.shape[0]
    tp = np.sum(calls & (labels == 1))
    fp = np.sum(calls & (labels == 0))
    return float(tp / n - fp / n * threshold / (1 - threshold))


def decision_curve(y_true, y_prob, thresholds=DEFAULT_DCA_THRESHOLDS) -> pd.DataFrame:
    """``threshold, net_benefit_model, net_benefit_treat_all, net_benefit_treat_none``."""
    labels, _ = check_binary_inputs(y_true, y_prob, require_both_classes=False, score_name="y_prob")
    prevalence = float(labels.mean())
    rows = []
    for t in thresholds:
        odds = t / (1 - t)
        rows.append(
            {
                "threshold": float(t),
                "net_benefit_model": net_benefit(labels, y_prob, t),
                "net_benefit_treat_all": prevalence - (1 - prevalence) * odds,
                "net_benefit_treat_none": 0.0,
            }
        )
    return pd.DataFrame(rows)
