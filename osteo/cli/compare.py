"""Compare runs (and readers) as in the reference's table: AUC with 95% CI per test set
(clustered by patient), paired Obuchowski p-values against the pre-specified primary model
(Holm over exactly the pre-specified comparisons), AUC differences with patient-bootstrap CIs,
readers' rows, ROC and reliability plots. Several runs of one model (seeds) are each listed
and summarised as mean +- SD.

    python tools/compare.py runs/fusion_all runs/fusion_clinical runs/fusion_deep \\
        --primary fusion_all --readers data/synthetic/default-seed0-dicom/readers.csv \\
        --out runs_comparison

A run's model is fusion_<head> from its config.yaml (fusion_all for deep_texture_clinical),
else its name. The primary is never chosen from test results: --primary, else the runs'
config key evaluation.primary (default fusion_all).

Writes comparison.md, comparison.csv, seeds.csv, roc_<test split>.png and reliability.png.
Exits 0 on success, 1 when an input file is missing or malformed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from osteo.cli.common import add_bootstrap_arguments, command_parser, report_error
from osteo.evaluation.comparison import DEFAULT_PRIMARY, compare_runs
from osteo.evaluation.runs import EvaluationInputError


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(__doc__)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (runs/<name>)")
    parser.add_argument(
        "--readers",
        type=Path,
        default=None,
        help="readers CSV: study_id, reader, score (5-point scale)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("comparison"), help="output folder (default: ./comparison)"
    )
    parser.add_argument("--confidence-level", type=float, default=0.95)
    parser.add_argument(
        "--primary",
        default=None,
        help="the pre-specified primary model (default: evaluation.primary of "
        f"the runs' config.yaml, else {DEFAULT_PRIMARY}); with a single model "
        "it is that model",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        default=None,
        metavar="MODEL",
        help="the pre-specified comparisons with the primary (models or "
        "reader names; default: evaluation.comparisons of the runs' config, "
        "else every other model and every reader)",
    )
    add_bootstrap_arguments(parser, "patient-bootstrap resamples for the AUC differences (0: skip)")
    args = parser.parse_args(argv)
    try:
        result = compare_runs(
            args.runs,
            args.readers,
            args.out,
            args.confidence_level,
            primary=args.primary,
            comparisons=args.compare,
            n_bootstrap=args.n_bootstrap,
            seed=args.seed,
        )
    except EvaluationInputError as err:
        return report_error(err, 1)
    print(result.markdown)
    print(f"wrote {', '.join(str(p) for p in result.files.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
