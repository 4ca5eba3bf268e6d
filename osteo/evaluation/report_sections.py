"""report.md sections for calibration, clinical utility (DCA, triage) and the T-score head."""

from __future__ import annotations

from osteo.evaluation.formatting import format_ci, format_number, markdown_table

__all__ = ["calibration_section", "clinical_utility_section", "tscore_section"]

DCA_TABLE_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


def _ci(m: dict, key: str) -> str:
    value = m.get(key)
    if value is None:
        return "-"
    return format_ci(value, m.get(f"{key}_ci"))


def calibration_section(metrics: dict, splits: list[str], settings: dict) -> list[str]:
    recal = settings.get("recalibration", {}).get("method", "none")
    lines = [
        "## Calibration",
        "",
        "Slope and intercept: logistic regression of the label on logit(p) (Cox 1958); "
        "calibration-in-the-large: intercept with the slope fixed at 1. Intervals: "
        f"{metrics[splits[0]].get('calibration_ci_method', 'none')}. Smoothed curves in "
        "`calibration_curve.png` (lowess, bootstrap band); no Hosmer-Lemeshow test "
        "(Van Calster et al. 2019).",
        f"Probabilities: {'corrected for the training pos_weight (prior shift)' if settings.get('prior_shift_corrected') else 'as the model output them'}"  # noqa: E501
        f"; recalibration on val: {recal}.",
        "",
    ]
    rows = []
    for s in splits:
        m = metrics[s]
        rows.append(
            [
                s,
                format_number(m["ece"]),
                _ci(m, "calibration_slope"),
                _ci(m, "calibration_intercept"),
                _ci(m, "calibration_in_the_large"),
                m.get("calibration_note") or "",
            ]
        )
    lines += [
        markdown_table(
            (
                "split",
                f"ECE ({settings['ece_bins']} bins)",
                "slope",
                "intercept",
                "calibration-in-the-large",
                "note",
            ),
            rows,
        ),
        "",
    ]
    before = [
        [
            s,
            format_number(m["calibration_slope"]),
            format_number(m["calibration_intercept"]),
            format_number(m["calibration_in_the_large"]),
            format_number(m["ece"]),
        ]
        for s in splits
        if (m := metrics[s].get("calibration_before_correction"))
    ]
    if before:
        lines += [
            "Before the prior-shift correction (the model's raw sigmoid, inflated by the "
            "training class weight):",
            "",
            markdown_table(
                ("split", "slope", "intercept", "calibration-in-the-large", "ECE"), before
            ),
            "",
        ]
    by_site = [
        [
            s,
            r["site"],
            str(r["n"]),
            str(r["n_positive"]),
            _ci(r, "calibration_slope"),
            _ci(r, "calibration_in_the_large"),
        ]
        for s in splits
        for r in metrics[s].get("calibration_by_site", [])
    ]
    if by_site:
        lines += [
            "Per site:",
            "",
            markdown_table(
                ("split", "site", "n", "positives", "slope", "calibration-in-the-large"),
                by_site,
                left_columns=2,
            ),
            "",
        ]
    return lines


def clinical_utility_section(metrics: dict, splits: list[str], settings: dict) -> list[str]:
    lines = [
        "## Clinical utility",
        "",
        "Decision curve (Vickers & Elkin 2006): net benefit = TP/N - FP/N x t/(1-t) at "
        "threshold probability t, against treating everyone and no one "
        "(`decision_curve.png`, `decision_curve.csv`).",
        "",
    ]
    headers = ["split", "strategy", *(f"t={t:g}" for t in DCA_TABLE_THRESHOLDS)]
    rows = []
    for s in splits:
        curve = metrics[s]["decision_curve"]
        index = {round(t, 6): i for i, t in enumerate(curve["threshold"])}
        for strategy, key in (
            ("model", "net_benefit_model"),
            ("treat all", "net_benefit_treat_all"),
        ):
            rows.append(
                [
                    s,
                    strategy,
                    *(
                        format_number(curve[key][index[t]]) if t in index else "-"
                        for t in DCA_TABLE_THRESHOLDS
                    ),
                ]
            )
    lines += [markdown_table(headers, rows, left_columns=2), ""]
    rule = settings.get("triage_rule")
    if rule:
        lines += [
            f"Triage rule chosen on val: rule out when probability < "
            f"{format_number(rule['rule_out_below'], 4)} (target NPV >= "
            f"{rule['target_npv']:g}), rule in when >= "
            f"{format_number(rule['rule_in_at_or_above'], 4)} (target PPV >= "
            f"{rule['target_ppv']:g}); the rest are referred for DXA."
            + (f" Note: {rule['note']}." if rule.get("note") else ""),
            "",
        ]
        t_rows = []
        for s in splits:
            t = metrics[s].get("triage")
            if t:
                t_rows.append(
                    [
                        s,
                        _ci(t, "share_ruled_out"),
                        _ci(t, "npv_ruled_out"),
                        _ci(t, "share_ruled_in"),
                        _ci(t, "ppv_ruled_in"),
                        _ci(t, "share_triaged"),
                    ]
                )
        lines += [
            markdown_table(
                (
                    "split",
                    "share ruled out",
                    "NPV ruled out",
                    "share ruled in",
                    "PPV ruled in",
                    "share triaged",
                ),
                t_rows,
            ),
            "",
        ]
    return lines


def tscore_section(metrics: dict, splits: list[str]) -> list[str]:
    rows = []
    for s in splits:
        t = metrics[s].get("tscore_regression")
        if not t:
            continue
        loa = t.get("limits_of_agreement") or [None, None]
        rows.append(
            [
                s,
                str(t["n"]),
                format_number(t.get("mae")),
                format_number(t.get("pearson_r")),
                format_number(t.get("bias")),
                f"{format_number(loa[0])} to {format_number(loa[1])}",
                format_ci(t["auc"], t.get("auc_ci"))
                if t.get("auc") is not None
                else t.get("auc_note", t.get("note", "-")),
            ]
        )
    if not rows:
        return []
    return [
        "## T-score regression",
        "",
        "The auxiliary head's T-score against DXA: mean absolute error, Pearson r, "
        "Bland-Altman bias and 95% limits of agreement (`bland_altman.png`), and the AUC of "
        "minus the predicted T-score as an osteoporosis classifier.",
        "",
        markdown_table(
            ("split", "n", "MAE", "Pearson r", "bias", "limits of agreement", "AUC (95% CI)"), rows
        ),
        "",
    ]
