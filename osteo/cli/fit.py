"""Run the osteo pipeline from a config: the one command users run.

    python tools/fit.py --config configs/fusion_all.yaml [key=value ...]

Makes the synthetic cohort when the configured manifest is missing, then runs or reuses each
stage and writes the run folder ``<output_dir>/<name>/``. ``--name-from-overrides`` appends
the overrides to the name (``fusion_all__head-deep__seed-1``), as W&B sweeps use it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from osteo.config import ConfigError, load_config
from osteo.data.manifest import ManifestError
from osteo.pipeline import run_pipeline
from osteo.pipeline.context import RunFolderBusyError
from osteo.pipeline.distributed import is_global_zero
from osteo.pipeline.summary import format_run_summary
from osteo.privacy import IdentifierKeyError
from osteo.sweeps.naming import name_from_overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value")
    parser.add_argument(
        "--name-from-overrides",
        action="store_true",
        help="name the run after its overrides (W&B sweeps: one folder per parameter set); "
        "an explicit name=... wins",
    )
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    try:
        if args.name_from_overrides and not any(o.startswith("name=") for o in overrides):
            base = load_config(args.config, overrides).name
            overrides.append(f"name={name_from_overrides(base, overrides)}")
        cfg = load_config(args.config, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        # run_pipeline checks the config (registries, Trainer arguments) before anything runs.
        result = run_pipeline(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ManifestError, FileNotFoundError, RunFolderBusyError, IdentifierKeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if is_global_zero():
        print(format_run_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
