"""Benchmark: the synthetic generator's speed at archive and native spacing.

    python benchmarks/bench_synthetic.py --studies 300 --out benchmarks/results/synthetic.json

Targets (issue 14): the default preset (1,500 studies) in <= 3 minutes on 2 cores at the
archive spacing; one native-resolution study in <= 3 s per core. Figures (JSON, seconds):

- ``render_seconds_archive_<site>``: ``render_study`` at the site's archive spacing, median
  CPU time over ``--renders`` studies of the site, one process.
- ``render_seconds_native_<site>``: the same at the site's native spacing (~7-10 MP), the
  fastest CPU time of ``--repeats`` renders of one study (other processes only add time).
- ``generate_wall_seconds`` / ``generate_cpu_seconds``: ``generate_cohort`` of ``--studies``
  studies of the default preset (DICOM, archive spacing) with 2 workers, wall time and the
  CPU time of the process and its workers (rendering, writing, pool start-up).
- ``projected_default_seconds_2_cores``: the CPU time scaled to 1,500 studies, over 2 cores:
  the wall time on two free cores. On a shared machine the measured wall time is longer by
  whatever else ran (``load_average_1min_at_start`` says how busy it was).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS, environment, load_average, print_table


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=300, help="studies generated (2 workers)")
    parser.add_argument("--renders", type=int, default=20, help="archive renders per site")
    parser.add_argument("--repeats", type=int, default=3, help="native renders per site")
    parser.add_argument("--out", type=Path, default=RESULTS / "synthetic.json")
    args = parser.parse_args(argv)

    from osteo.data.synthetic import SITES, generate_cohort, render_study, sample_cohort_table

    figures: dict[str, float] = {}
    table = sample_cohort_table("tiny", seed=0)
    render_study(table.iloc[0].to_dict())  # imports and caches outside the timings
    for site in SITES:
        studies = table[table["site"] == site].to_dict("records")
        times = []
        for k in range(args.renders):
            start = time.process_time()
            render_study(studies[k % len(studies)])
            times.append(time.process_time() - start)
        figures[f"render_seconds_archive_{site}"] = statistics.median(times)
        native = SITES[site].native_spacing_mm
        times = []
        for _ in range(args.repeats):
            start = time.process_time()
            render_study(studies[0], native)
            times.append(time.process_time() - start)
        figures[f"render_seconds_native_{site}"] = min(times)

    with tempfile.TemporaryDirectory() as tmp:
        cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        generate_cohort(
            Path(tmp) / "cohort", "default", seed=0, n_studies=args.studies, progress=False
        )
        figures["generate_wall_seconds"] = time.perf_counter() - start
        figures["generate_cpu_seconds"] = (
            _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
        )
    figures["generate_studies"] = args.studies
    figures["projected_default_seconds_2_cores"] = (
        figures["generate_cpu_seconds"] * 1500 / args.studies / 2.0
    )
    figures["load_average_1min_at_end"] = load_average()

    print_table(sorted(figures.items()), "synthetic generator (seconds)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"figures": figures, "environment": environment()}
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
