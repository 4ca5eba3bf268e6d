"""Benchmark: wall time of the main command, cold (empty caches) and warm (everything cached).

    python benchmarks/bench_pipeline.py                    # tiny preset: a quick check
    python benchmarks/bench_pipeline.py --preset default   # the real figure (~10+ min cold)

Runs ``tools/fit.py --config configs/fusion_all.yaml`` twice in a temporary folder (its own
data, cache and run folders): the cold run makes the synthetic cohort and runs every stage;
the warm run is the same command again, which reuses every stage. Times are wall-clock of
the whole process (interpreter start-up and imports included), as a user sees them, plus each
stage's time from the run's ``stages.json``. ``--manifest`` reuses an existing cohort (the cold
run then starts from the cohort, not from nothing). Extra ``key=value`` words are passed to
fit.py (e.g. ``train.max_epochs=1`` for a smoke test).

Figures (JSON, plain names): ``cold_seconds``, ``warm_seconds``, ``warm_to_cold_ratio``,
``cold_stage_seconds`` / ``warm_stage_seconds`` (per stage) and ``warm_stage_status``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from common import RESULTS, ROOT, environment, load_average, print_table, run_fit, write_json


def stage_table(run_dir: Path) -> dict:
    return json.loads((run_dir / "stages.json").read_text())["stages"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", choices=["tiny", "default", "paper"])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "fusion_all.yaml")
    parser.add_argument("--manifest", type=Path, default=None, help="reuse this cohort")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--out", type=Path, default=None, help="JSON file")
    parser.add_argument("overrides", nargs="*", help="key=value for fit.py")
    args = parser.parse_args(argv)

    env = environment()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="osteo_bench_pipeline_"))
    work.mkdir(parents=True, exist_ok=True)
    manifest = args.manifest.resolve() if args.manifest else work / "data" / "manifest.csv"
    overrides = [
        f"data.manifest={manifest}",
        f"data.synthetic.preset={args.preset}",
        f"cache_dir={work / 'cache'}",
        f"output_dir={work / 'runs'}",
        "name=bench",
        "trainer.enable_progress_bar=false",
        *args.overrides,
    ]
    # Both runs read a snapshot of the config folder: an edit of configs/ between the cold and
    # the warm run (an hour apart for the default preset) would change the cache keys.
    config_path = Path(args.config).resolve()
    snapshot = work / "config_snapshot"
    shutil.copytree(config_path.parent, snapshot, dirs_exist_ok=True)
    config = snapshot / config_path.name
    try:
        print(f"cold run in {work} (preset {args.preset}) ...", flush=True)
        cold = run_fit(config, overrides, work / "cold.log")
        cold_stages = stage_table(work / "runs" / "bench")
        print(f"cold: {cold:.1f} s; warm run ...", flush=True)
        warm = run_fit(config, overrides, work / "warm.log")
        warm_stages = stage_table(work / "runs" / "bench")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    # A warm run retrains nothing; a stage that ran again means its inputs changed under us.
    rerun = [
        k for k in ("segmentation", "classifier") if warm_stages.get(k, {}).get("status") == "ran"
    ]
    if rerun:
        print(f"warning: the warm run trained {rerun} again; its time is not a warm figure")
    figures = {
        "cold_seconds": round(cold, 1),
        "warm_seconds": round(warm, 1),
        "warm_to_cold_ratio": round(warm / cold, 3),
    }
    result = {
        "settings": {
            "preset": args.preset,
            "config": str(Path(args.config).resolve().relative_to(ROOT))
            if Path(args.config).resolve().is_relative_to(ROOT)
            else str(args.config),
            "cohort": "given" if args.manifest else "made by the cold run",
            "overrides": list(args.overrides),
        },
        **figures,
        "cold_stage_seconds": {k: v["wall_s"] for k, v in cold_stages.items()},
        "warm_stage_seconds": {k: v["wall_s"] for k, v in warm_stages.items()},
        "warm_stage_status": {k: v["status"] for k, v in warm_stages.items()},
        "warm_stages_trained_again": rerun,
        "environment": {**env, "load_average_1min_at_end": load_average()},
    }
    rows = list(figures.items())
    rows += [(f"cold {k}", v) for k, v in result["cold_stage_seconds"].items()]
    rows += [
        (f"warm {k} ({result['warm_stage_status'][k]})", v)
        for k, v in result["warm_stage_seconds"].items()
    ]
    print_table(rows, f"main command, preset {args.preset}")
    write_json(args.out or RESULTS / f"pipeline_{args.preset}.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
