"""W&B sweeps over osteo's config (sweep files: configs/sweeps/*.yaml, W&B's format).

    python tools/sweep.py create configs/sweeps/fusion_heads.yaml      # register (W&B online)
    python tools/sweep.py agent ENTITY/PROJECT/SWEEP_ID [--count N]    # take runs from it
    python tools/sweep.py local configs/sweeps/fusion_heads.yaml --parallel 2 [key=value ...]

`local` needs no W&B server: it expands the grid, checks every run's config against the
schema before anything runs, runs tools/fit.py for each (W&B logging offline), K at a time,
and ends with tools/compare.py's table over the runs and the mean and SD over seeds, in
<out>/summary/. `--only KEY=V1,V2` keeps some values of a swept key; key=value words after the
file apply to every run (e.g. data.synthetic.preset=tiny). A Bayesian or random sweep runs
locally only as random draws: --max-runs N.

Exit codes: 0 done, 1 a run failed (the summary covers the others), 2 a bad sweep or option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from osteo.cli.common import command_parser, report_error
from osteo.config import load_config
from osteo.sweeps import (
    SweepError,
    create_sweep,
    load_sweep,
    prepare_local_sweep,
    run_agent,
    run_local_sweep,
)
from osteo.sweeps.spec import resolve_path


def _only(values: list[str]) -> dict[str, list[str]]:
    only: dict[str, list[str]] = {}
    for item in values:
        key, sep, listed = item.partition("=")
        if not sep or not key or not listed:
            raise SweepError(f"--only {item!r}: expected KEY=V1,V2 (e.g. model.head=clinical)")
        only.setdefault(key, []).extend(v.strip() for v in listed.split(","))
    return only


def _create(args) -> int:
    spec = load_sweep(args.file)
    # Checked here, before W&B hands out a single run (a typo would fail every one).
    prepare_local_sweep(spec, max_runs=1)
    project = args.project or load_config(resolve_path(spec.config)).logger.project
    sweep_id = create_sweep(spec, project=project, entity=args.entity)
    print(f"created sweep {sweep_id} in project {project}")
    print(f"run it with: python tools/sweep.py agent {sweep_id} --project {project}")
    return 0


def _agent(args) -> int:
    run_agent(args.sweep_id, count=args.count, project=args.project, entity=args.entity)
    return 0


def _local(args) -> int:
    if args.parallel < 1:
        raise SweepError("--parallel must be at least 1")
    spec = load_sweep(args.file)
    prepared = prepare_local_sweep(
        spec,
        extra_overrides=args.overrides,
        only=_only(args.only),
        max_runs=args.max_runs,
        sample_seed=args.sample_seed,
        out_dir=args.out,
    )
    if args.dry_run:
        for plan in prepared.plans:
            print(" ".join(prepared.commands[plan.name]))
        print(f"{len(prepared.plans)} runs checked; nothing run (--dry-run)")
        return 0
    result = run_local_sweep(prepared, parallel=args.parallel, readers=args.readers)
    if result.comparison_markdown:
        print("\n" + result.comparison_markdown)
    elif result.comparison_error:
        print(f"\nno comparison table: {result.comparison_error}")
    print("\n" + result.aggregate_markdown)
    print(f"summary in {result.out_dir / 'summary'}")
    if result.n_failed:
        print(f"{result.n_failed} of {len(result.outcomes)} runs failed", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    create = commands.add_parser("create", help="register a sweep file with W&B (online)")
    create.add_argument("file", type=Path)
    create.add_argument("--project", help="W&B project (default: the config's logger.project)")
    create.add_argument("--entity", help="W&B entity (default: your default entity)")
    create.set_defaults(handler=_create)

    agent = commands.add_parser("agent", help="run a W&B agent (from the repository root)")
    agent.add_argument("sweep_id", help="the id `create` printed (ENTITY/PROJECT/ID or ID)")
    agent.add_argument("--count", type=int, default=None, help="stop after N runs")
    agent.add_argument("--project")
    agent.add_argument("--entity")
    agent.set_defaults(handler=_agent)

    local = commands.add_parser("local", help="run the sweep here, no W&B server")
    local.add_argument("file", type=Path)
    local.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    local.add_argument("--parallel", type=int, default=1, help="runs at a time (default 1)")
    local.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="keep these values of a swept key (repeatable)",
    )
    local.add_argument(
        "--max-runs",
        type=int,
        default=None,
        help="bayes/random: draw N runs at random; grid: keep the first N",
    )
    local.add_argument("--sample-seed", type=int, default=0, help="seed of the random draws")
    local.add_argument("--out", type=Path, default=None, help="sweep folder")
    local.add_argument("--readers", type=Path, default=None, help="readers CSV for compare")
    local.add_argument("--dry-run", action="store_true", help="check and list, run nothing")
    local.set_defaults(handler=_local)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # key=value words may come after options (`local FILE --parallel 2 a=b`), where argparse
    # no longer assigns them to the positional list: collect them here.
    args, rest = parser.parse_known_args(argv)
    unknown = [w for w in rest if w.startswith("-") or "=" not in w or args.command != "local"]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    try:
        return args.handler(args)
    except SweepError as err:
        return report_error(err, 2)


if __name__ == "__main__":
    sys.exit(main())
