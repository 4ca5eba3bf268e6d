"""Generate a synthetic hip-radiograph cohort (images, femur masks, manifest, readers, latent).

    python tools/make_synthetic.py --out data/synthetic --preset default
    python tools/make_synthetic.py --out /tmp/tiny --preset tiny --format png --workers 1
    python tools/make_synthetic.py --out data/swap --preset default --site-swap
    python tools/make_synthetic.py --out /tmp/full --preset tiny --fullres   # native pixels
    python tools/make_synthetic.py --out /tmp/sp09 --preset tiny --spacing-mm 0.9

Deterministic for a seed: the same files whatever the number of workers. See docs/synthetic.md.
"""

from __future__ import annotations

import time
from pathlib import Path

from osteo.cli.common import command_parser
from osteo.data.synthetic import IMAGE_FORMATS, PRESETS, generate_cohort
from osteo.data.synthetic.presets import MAX_SPACING_MM, MIN_SPACING_MM


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="cohort sizes: tiny (tests), default (main command), paper",
    )
    parser.add_argument(
        "--n-studies",
        type=int,
        default=None,
        help="total studies, split across cohorts as in the preset",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--format", choices=sorted(IMAGE_FORMATS), default="dicom", dest="image_format"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes (1 = in-process)")
    spacing = parser.add_mutually_exclusive_group()
    spacing.add_argument(
        "--spacing-mm",
        type=float,
        default=None,
        help="render both sites at this pixel spacing (0.1-1.5 mm; default: each site's "
        "archive spacing)",
    )
    spacing.add_argument(
        "--fullres",
        action="store_true",
        help="render at each site's native detector spacing (~0.14-0.15 mm, ~3,000 px a side)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--site-swap",
        action="store_true",
        help="external test = the internal test studies rendered at site B (site-drop study)",
    )
    args = parser.parse_args(argv)
    if args.n_studies is not None and args.n_studies < 3:
        parser.error("--n-studies must be at least 3 (one per cohort)")
    if args.spacing_mm is not None and not MIN_SPACING_MM <= args.spacing_mm <= MAX_SPACING_MM:
        parser.error(f"--spacing-mm must be {MIN_SPACING_MM:g}-{MAX_SPACING_MM:g}")

    start = time.perf_counter()
    summary = generate_cohort(
        args.out,
        preset=args.preset,
        seed=args.seed,
        n_studies=args.n_studies,
        image_format=args.image_format,
        workers=args.workers,
        progress=not args.quiet,
        site_swap=args.site_swap,
        spacing_mm=args.spacing_mm,
        fullres=args.fullres,
    )
    elapsed = time.perf_counter() - start
    spacing = summary["spacing"]
    spacing = spacing if spacing in ("archive", "native") else f"{spacing} mm"
    print(
        f"{summary['studies']} studies of {summary['patients']} patients in {args.out} "
        f"at {spacing} spacing ({elapsed:.1f} s)"
    )
    if summary["site_swap"]:
        print("  site swap: the external test studies are the internal test studies at site B")
    for name, c in summary["cohorts"].items():
        readers = ""
        if "reader_auc" in c:
            readers = ", readers " + " / ".join(
                f"{v:.3f}" for v in c["reader_auc"].values() if v is not None
            )
        oracle = "n/a" if c["oracle_auc"] is None else f"{c['oracle_auc']:.3f}"
        print(
            f"  {name:14s} site {c['site']}: {c['studies']:5d} studies, {c['positives']:4d} "
            f"osteoporosis ({c['prevalence']:.1%}), oracle AUC {oracle}{readers}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
