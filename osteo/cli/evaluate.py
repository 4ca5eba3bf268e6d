"""Recompute a run's metrics.json, plots (roc_<test split>.png, reliability.png,
calibration_curve.png, decision_curve.png, bland_altman.png) and report.md from its
predictions.csv, and print the summary table.

    python tools/evaluate.py --run runs/deep_clinical [--threshold-method sensitivity
        --target-sensitivity 0.9] [--n-bootstrap 2000] [--seed 0] [--recalibration platt]
        [--triage-npv 0.95 --triage-ppv 0.95]

Exits 0 on success, 1 when the run folder's files are missing or malformed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from osteo.cli.common import add_bootstrap_arguments, command_parser, report_error
from osteo.evaluation.report import evaluate_run, format_summary_table
from osteo.evaluation.runs import EvaluationInputError


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="run folder (runs/<name>)")
    parser.add_argument(
        "--threshold-method",
        choices=("youden", "sensitivity"),
        default="youden",
        help="how the threshold is chosen on val (default: youden)",
    )
    parser.add_argument(
        "--target-sensitivity",
        type=float,
        default=None,
        help="with --threshold-method sensitivity: the sensitivity to reach",
    )
    parser.add_argument("--confidence-level", type=float, default=0.95)
    add_bootstrap_arguments(parser, "patient bootstrap resamples for the AUC (0: skip)")
    parser.add_argument(
        "--recalibration",
        choices=("none", "platt", "isotonic"),
        default="none",
        help="recalibration fitted on val (default: none)",
    )
    parser.add_argument(
        "--triage-npv",
        type=float,
        default=0.95,
        help="rule-out zone: NPV on val at least this (default 0.95)",
    )
    parser.add_argument(
        "--triage-ppv",
        type=float,
        default=0.95,
        help="rule-in zone: PPV on val at least this (default 0.95)",
    )
    args = parser.parse_args(argv)
    if (args.threshold_method == "sensitivity") != (args.target_sensitivity is not None):
        parser.error("--target-sensitivity goes with --threshold-method sensitivity (and only it)")
    try:
        metrics = evaluate_run(
            args.run,
            threshold_method=args.threshold_method,
            target_sensitivity=args.target_sensitivity,
            confidence_level=args.confidence_level,
            n_bootstrap=args.n_bootstrap,
            seed=args.seed,
            recalibration=args.recalibration,
            triage_npv=args.triage_npv,
            triage_ppv=args.triage_ppv,
        )
    except EvaluationInputError as err:
        return report_error(err, 1)
    print(format_summary_table(metrics))
    print(f"\nwrote {args.run / 'metrics.json'} and {args.run / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
