#!/usr/bin/env python
"""Compare runs (and readers) as in the reference's table: AUC with 95% CI per test set, paired
DeLong p-values against the best model (Holm-corrected), readers' rows, ROC and reliability plots.

    python tools/compare.py runs/clinical runs/deep runs/deep_clinical \\
        --readers data/synthetic/default-seed0-dicom/readers.csv --out runs_comparison

Writes comparison.md, comparison.csv, roc_<test split>.png and reliability.png to --out.
Exits 0 on success, 1 when an input file is missing or malformed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from osteo.evaluation.comparison import compare_runs  # noqa: E402
from osteo.evaluation.runs import EvaluationInputError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    args = parser.parse_args(argv)
    try:
        result = compare_runs(args.runs, args.readers, args.out, args.confidence_level)
    except EvaluationInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result.markdown)
    print(f"wrote {', '.join(str(p) for p in result.files.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
