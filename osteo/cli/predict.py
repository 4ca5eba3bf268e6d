"""Predict osteoporosis on new hip radiographs with a trained run folder.

    python tools/predict.py --run runs/fusion_all scans/ new.dcm more.csv --out out.jsonl \
        --overlays overlays/

INPUT: DICOM or image files, folders (searched recursively) or manifest CSVs (``study_id``,
``image_path``; optional ``age``, ``sex``, ``weight``, ``mask_path``). Clinical values come from
the options, the manifest, then the DICOM header. One record per study (JSON lines, or CSV),
with the probability, the decision at the run's validated threshold, the predicted T-score
(when the model has that output), the ROI boxes, quality flags and the top contributing
features; studies are named by a hash unless --show-identifiers.

A study that is not an AP pelvis radiograph the model can read (another body part or
modality, a photograph, one femur or an implausible segmentation, texture far outside the
training distribution) gets ``"status": "not_assessable"`` and its ``reasons``, with no
probability or decision.

Exit status: 0 when every study was predicted; 1 when some failed (each failure is in the
output and listed at the end, the others are predicted); 2 when nothing could start (bad run
folder, manifest problems, no inputs); 3 when none failed but some were not assessable (listed
at the end with their reasons). Failures take precedence: 1 when both happened.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from osteo.cli.common import command_parser, report_error
from osteo.data.manifest import ManifestError
from osteo.predict.batch import build_predictor, predict_batch
from osteo.predict.clinical import check_option
from osteo.predict.image_checks import MAX_MEGAPIXELS
from osteo.predict.inputs import collect_inputs
from osteo.predict.predictor import PredictionSettings
from osteo.predict.trained_run import RunFolderError
from osteo.predict.writers import FORMATS, ResultWriter

# Exit statuses (documented above, in README.md and docs/assessability.md).
EXIT_OK, EXIT_FAILED, EXIT_NOT_STARTED, EXIT_NOT_ASSESSABLE = 0, 1, 2, 3


def _clinical(name: str):
    def parse(value: str):
        try:
            return check_option(name, value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = command_parser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="a run folder from tools/fit.py")
    parser.add_argument("inputs", nargs="+", help="DICOM/image files, folders or manifest CSVs")
    parser.add_argument("--out", type=Path, help="output file (default: JSON lines on stdout)")
    parser.add_argument(
        "--format", choices=FORMATS, help="default: from --out's suffix, else jsonl"
    )
    parser.add_argument("--age", type=_clinical("age"), help="years, for every input")
    parser.add_argument("--sex", type=_clinical("sex"), help="F or M, for every input")
    parser.add_argument("--weight", type=_clinical("weight"), help="kg, for every input")
    parser.add_argument("--overlays", type=Path, help="write one explanation PNG per study here")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--show-identifiers",
        action="store_true",
        help="put study ids and paths in outputs (default: hashed ids, no paths)",
    )
    parser.add_argument(
        "--masks-from-manifest",
        action="store_true",
        help="use the manifest's mask_path instead of segmenting",
    )
    parser.add_argument(
        "--segmentation-checkpoint", type=Path, help="a femur U-Net instead of the run's own"
    )
    parser.add_argument("--cache-dir", type=Path, help="keep predicted masks here for next time")
    parser.add_argument("--top-features", type=int, default=10, help="per study (default 10)")
    parser.add_argument("--no-gradcam", action="store_true", help="skip the Grad-CAM pass")
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=MAX_MEGAPIXELS,
        help=f"refuse larger images before decoding them (default {MAX_MEGAPIXELS:g})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fmt = args.format or ("csv" if args.out and args.out.suffix.lower() == ".csv" else "jsonl")
    settings = PredictionSettings(
        clinical_options={
            k: v
            for k, v in (("age", args.age), ("sex", args.sex), ("weight", args.weight))
            if v is not None
        },
        overlays_dir=args.overlays,
        gradcam=not args.no_gradcam,
        top_k=args.top_features,
        max_megapixels=args.max_megapixels,
        show_identifiers=args.show_identifiers,
    )
    try:
        studies = collect_inputs(args.inputs)
        if not studies:
            print("error: no radiographs found in the inputs", file=sys.stderr)
            return EXIT_NOT_STARTED
        predictor = build_predictor(
            args.run,
            device=args.device,
            masks_from_manifest=args.masks_from_manifest,
            segmentation_checkpoint=args.segmentation_checkpoint,
            cache_dir=args.cache_dir,
            settings=settings,
        )
    except (ManifestError, RunFolderError) as err:
        return report_error(err, EXIT_NOT_STARTED)
    for note in predictor.run.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    with ResultWriter(args.out, fmt, args.show_identifiers) as writer:
        summary = predict_batch(predictor, studies, writer, progress=not args.no_progress)

    per_study = summary.seconds_per_study
    timing = f", {per_study:.2f} s per radiograph" if per_study is not None else ""
    print(
        f"predicted {summary.predicted} of {summary.studies} studies in "
        f"{summary.seconds:.1f} s{timing} (threshold {predictor.run.threshold:.3f}, "
        f"{predictor.run.threshold_note})",
        file=sys.stderr,
    )
    if summary.not_assessable:
        print(f"{len(summary.not_assessable)} not assessable (no prediction):", file=sys.stderr)
        for index, study, reasons in summary.not_assessable:
            print(f"  input #{index} (study {study}): {'; '.join(reasons)}", file=sys.stderr)
    if summary.failures:
        print(f"{len(summary.failures)} failed:", file=sys.stderr)
        for index, study, error in summary.failures:
            print(f"  input #{index} (study {study}): {error}", file=sys.stderr)
    if (summary.failures or summary.not_assessable) and not args.show_identifiers:
        print("  (rerun with --show-identifiers to see file names)", file=sys.stderr)
    if summary.failures:
        return EXIT_FAILED
    return EXIT_NOT_ASSESSABLE if summary.not_assessable else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
