"""Check a manifest before a long run: every problem at once, or a summary per split and site.

    python tools/check_manifest.py data/synthetic/default-seed0-dicom/manifest.csv \\
        [--config configs/fusion_all.yaml]

Exits 0 for a good manifest, 1 for a manifest with problems, 2 for a usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

from osteo.cli.common import command_parser, report_error
from osteo.config import ConfigError, load_config
from osteo.data.manifest import ManifestError, format_summary, load_manifest, make_splits


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(__doc__)
    parser.add_argument("manifest", type=Path, help="manifest CSV")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config whose data.split settings define the splits",
    )
    parser.add_argument(
        "--no-labels",
        action="store_true",
        help="labels are not needed (prediction only): tscore may be empty",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        return report_error(err, 2)
    try:
        manifest = load_manifest(
            args.manifest,
            require_label=not args.no_labels,
            check_files=cfg.data.check_files,
            allow_outside_paths=cfg.data.allow_outside_paths,
        )
    except ManifestError as err:
        print(err, file=sys.stderr)
        return 1
    s = cfg.data.split
    try:
        split = make_splits(
            manifest,
            s.internal_test_from,
            s.internal_test_to,
            s.internal_test_sites,
            s.external_test_sites,
            s.val_fraction,
            s.seed,
        )
    except ValueError as err:
        print(f"{args.manifest}: {err}", file=sys.stderr)
        return 1
    print(f"{args.manifest}: OK")
    print(format_summary(manifest, split))
    return 0


if __name__ == "__main__":
    sys.exit(main())
