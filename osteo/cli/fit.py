"""Run the osteo pipeline from a config: the one command users run.

    python tools/fit.py --config configs/fusion_all.yaml [key=value ...]

Makes the synthetic cohort when the configured manifest is missing, then runs or reuses each
stage and writes the run folder ``<output_dir>/<name>/``. ``--name-from-overrides`` appends
the overrides to the name (``fusion_all__head-deep__seed-1``), as W&B sweeps use it.
"""

from __future__ import annotations

import sys

from osteo.cli.common import add_config_arguments, command_parser
from osteo.config import load_config
from osteo.pipeline import run_pipeline
from osteo.pipeline.distributed import is_global_zero
from osteo.pipeline.errors import exit_code_for, exit_codes_help, one_line
from osteo.pipeline.summary import format_run_summary
from osteo.sweeps.naming import name_from_overrides


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(__doc__, epilog=exit_codes_help())
    add_config_arguments(parser)
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
        # run_pipeline checks the config (registries, Trainer arguments) before anything runs.
        result = run_pipeline(cfg)
    except BaseException as err:
        # An expected failure (see osteo/pipeline/errors.py) is one line and its exit code;
        # anything else is a bug and keeps its traceback.
        entry = exit_code_for(err)
        if entry is None:
            raise
        print(f"error ({entry.error}, exit {entry.code}): {one_line(err)}", file=sys.stderr)
        return entry.code
    if is_global_zero():
        print(format_run_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
