"""Precompute the radiomics feature store with K worker processes.

    python tools/extract_radiomics.py --config configs/fusion_all.yaml [--workers K] [key=value ...]

Runs (or reuses) the data, segmentation and ROI stages of the config, extracts the features of
every study into the content-addressed store (``cache_dir/radiomics``), prints failed ROIs with
their reasons, and writes one feature table per split to ``<run folder>/radiomics/``.
"""

from __future__ import annotations

import sys

from osteo.cli.common import add_config_arguments, command_parser, report_error
from osteo.config import ConfigError, load_config
from osteo.data.manifest import ManifestError
from osteo.pipeline.distributed import is_global_zero
from osteo.pipeline.precompute import extract_radiomics


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(__doc__)
    add_config_arguments(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="extraction processes (default: radiomics.workers)",
    )
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.append(f"radiomics.workers={args.workers}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as err:
        return report_error(err, 2)
    try:
        run = extract_radiomics(cfg)
    except (ManifestError, FileNotFoundError, ValueError) as err:
        return report_error(err, 1)
    if is_global_zero():
        figures = next(r.figures for r in run.stages if r.name == "radiomics")
        print(
            f"radiomics: {figures['n_studies']} studies x {figures['n_features']} features, "
            f"{figures['n_from_cache']} from the store, {figures['n_extracted']} extracted in "
            f"{figures['seconds']:.1f} s with {figures['workers']} worker(s)"
        )
        for failure in run.failures[:20]:
            print(f"  failed {failure.roi} of a study: {failure.reason}")
        if len(run.failures) > 20:
            print(f"  ... and {len(run.failures) - 20} more (see {run.run_dir / 'stages.json'})")
        for split, path in sorted(run.split_files.items()):
            print(f"  {split}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
