"""The T-score regression head (``model.aux_tscore_weight`` > 0): how well it predicts DXA.

Reported per split on studies with a measured T-score: mean absolute error, Pearson r,
Bland-Altman bias and 95% limits of agreement (Bland & Altman 1986, *Lancet* 327:307-310),
and the AUC of the predicted T-score as a classifier of osteoporosis (score = minus the
predicted T-score, since a lower T-score means osteoporosis; clustered CI by patient).
"""

from __future__ import annotations

import numpy as np

from osteo.evaluation.clustered import clustered_auc
from osteo.evaluation.stats import roc_auc

__all__ = ["tscore_metrics"]


def tscore_metrics(tscore, tscore_pred, labels, patient_ids=None, confidence_level=0.95) -> dict:
    measured = np.asarray(tscore, dtype=float)
    predicted = np.asarray(tscore_pred, dtype=float)
    labels = np.asarray(labels).astype(int)
    keep = np.isfinite(measured) & np.isfinite(predicted)
    n = int(keep.sum())
    result: dict = {"n": n}
    if n < 3:
        result["note"] = f"{n} studies with both a measured and a predicted T-score: too few"
        return result
    m, p, y = measured[keep], predicted[keep], labels[keep]
    diff = p - m
    sd = float(diff.std(ddof=1))
    result.update(
        {
            "mae": float(np.mean(np.abs(diff))),
            "pearson_r": float(np.corrcoef(m, p)[0, 1]) if np.ptp(m) and np.ptp(p) else None,
            "bias": float(diff.mean()),
            "limits_of_agreement": [float(diff.mean() - 1.96 * sd), float(diff.mean() + 1.96 * sd)],
        }
    )
    patients = None if patient_ids is None else np.asarray(patient_ids)[keep]
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == n:
        result["auc_note"] = "one class only: no AUC"
        return result
    try:
        estimate = clustered_auc(y, -p, patients, confidence_level)
        result.update(
            {"auc": estimate.auc, "auc_ci": list(estimate.ci), "auc_ci_method": estimate.method}
        )
    except ValueError as err:  # too few patients per class for a variance
        result.update({"auc": roc_auc(y, -p), "auc_ci": None, "auc_ci_method": f"none: {err}"})
    return result
