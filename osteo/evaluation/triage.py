"""A two-threshold triage rule chosen on validation (Hsieh et al. 2021 report the share of
patients classified at >= 95% PPV or NPV).

Rule-out: probability < t_out, with t_out the highest threshold whose ruled-out studies on
val reach NPV >= ``target_npv`` (as many ruled out as possible). Rule-in: probability >= t_in,
with t_in the lowest threshold whose ruled-in studies on val reach PPV >= ``target_ppv``.
Everyone in between is "refer for DXA". The thresholds are then applied unchanged to each
test set, which reports the share ruled out / in and the NPV / PPV achieved there, with
patient-bootstrap intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from osteo.evaluation.clustered import patient_index_bootstrap
from osteo.evaluation.stats import check_binary_inputs

__all__ = ["TriageRule", "apply_triage", "choose_triage"]


@dataclass(frozen=True)
class TriageRule:
    rule_out_below: float | None  # None: no threshold reaches the NPV target on val
    rule_in_at_or_above: float | None
    target_npv: float
    target_ppv: float
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "rule_out_below": self.rule_out_below,
            "rule_in_at_or_above": self.rule_in_at_or_above,
            "target_npv": self.target_npv,
            "target_ppv": self.target_ppv,
            "note": self.note,
        }


def choose_triage(
    y_val, prob_val, target_npv: float = 0.95, target_ppv: float = 0.95
) -> TriageRule:
    """The widest rule-out and rule-in zones reaching the targets on validation."""
    labels, prob = check_binary_inputs(
        y_val, prob_val, score_name="prob_val", require_both_classes=False
    )
    if labels.min() == labels.max():
        return TriageRule(
            None, None, target_npv, target_ppv, "val holds one class only: no triage thresholds"
        )
    candidates = np.unique(prob)
    t_out = None
    for t in candidates[::-1]:  # highest first: rule out as many as possible
        out = prob < t
        if out.any() and np.mean(labels[out] == 0) >= target_npv:
            t_out = float(t)
            break
    t_in = None
    for t in candidates:  # lowest first: rule in as many as possible
        inside = prob >= t
        if inside.any() and np.mean(labels[inside] == 1) >= target_ppv:
            t_in = float(t)
            break
    notes = []
    if t_out is None:
        notes.append(f"no threshold reaches NPV >= {target_npv} on val")
    if t_in is None:
        notes.append(f"no threshold reaches PPV >= {target_ppv} on val")
    if t_out is not None and t_in is not None and t_out > t_in:
        # The zones would overlap; keep them disjoint by meeting in the middle of the overlap.
        t_out = t_in
        notes.append("rule-out and rule-in zones met; rule-out capped at the rule-in threshold")
    return TriageRule(t_out, t_in, target_npv, target_ppv, "; ".join(notes))


def _triage_stats(labels, prob, rule: TriageRule) -> np.ndarray:
    out = (
        prob < rule.rule_out_below
        if rule.rule_out_below is not None
        else np.zeros_like(labels, dtype=bool)
    )
    inside = (
        prob >= rule.rule_in_at_or_above
        if rule.rule_in_at_or_above is not None
        else np.zeros_like(labels, dtype=bool)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array(
            [
                out.mean(),
                inside.mean(),
                (out | inside).mean(),
                np.sum(out & (labels == 0)) / out.sum(),
                np.sum(inside & (labels == 1)) / inside.sum(),
            ],
            dtype=float,
        )


TRIAGE_KEYS = (
    "share_ruled_out",
    "share_ruled_in",
    "share_triaged",
    "npv_ruled_out",
    "ppv_ruled_in",
)


def apply_triage(
    y_true,
    y_prob,
    rule: TriageRule,
    patient_ids=None,
    *,
    n_resamples=2000,
    confidence_level=0.95,
    seed=0,
) -> dict:
    """Shares and achieved NPV / PPV of ``rule`` on a split, with patient-bootstrap CIs."""
    labels, prob = check_binary_inputs(
        y_true, y_prob, require_both_classes=False, score_name="y_prob"
    )
    estimate = _triage_stats(labels, prob, rule)
    result = {
        k: (float(v) if np.isfinite(v) else None)
        for k, v in zip(TRIAGE_KEYS, estimate, strict=True)
    }
    result["n_ruled_out"] = int(round(estimate[0] * labels.shape[0]))
    result["n_ruled_in"] = int(round(estimate[1] * labels.shape[0]))
    if n_resamples > 0 and labels.min() != labels.max():
        boot = patient_index_bootstrap(
            lambda i: _triage_stats(labels[i], prob[i], rule),
            labels,
            patient_ids,
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            seed=seed,
        )
        for key, lo, hi in zip(TRIAGE_KEYS, boot.ci_low, boot.ci_high, strict=True):
            result[f"{key}_ci"] = [float(lo), float(hi)] if np.isfinite(lo) else None
        result["ci_method"] = f"{boot.unit} bootstrap, percentile"
    return result
