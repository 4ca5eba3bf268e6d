"""One model over several synthetic cohorts (generator seeds): AUC mean +- SD next to each ceiling.

    python tools/fit.py --config configs/fusion_all.yaml data.synthetic.seed=1 name=fusion_all_gen1
    python benchmarks/generator_seeds.py runs/fusion_all runs/fusion_all_gen1 runs/fusion_all_gen2
    python benchmarks/generator_seeds.py runs/mine=data/my_cohort      # a cohort found by hand

``tools/compare.py`` pairs runs study by study, so it refuses runs on different cohorts (their
studies differ). Across generator seeds nothing is paired: this script reads each run's
``metrics.json`` (AUC with its clustered CI per test split), the generator seed from its
``config.yaml`` and the oracle AUCs from its cohort's ``cohort.json``, and reports per model
and split the mean and SD of the AUC over the runs, of the cohort's oracle, and of the gap
(oracle - model). Run folders must have been written with ``logger.log_identifiers=true`` or
keep ``data.manifest`` resolvable from the synthetic settings (the default), so the cohort can
be found.

Figures (JSON ``benchmarks/results/generator_seeds.json``): per model and split ``auc_mean``,
``auc_sd``, ``oracle_mean``, ``gap_mean``, ``gap_sd`` and each run's ``auc``, ``auc_ci``,
``oracle`` and ``generator_seed``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import RESULTS, print_table, run_cohort_folder, write_json

SPLITS = ("internal_test", "external_test")


def run_figures(run: Path, cohort_dir: Path | None = None) -> dict:
    """Model, generator seed, AUC (with CI) and the cohort's oracle per test split of one run."""
    from osteo.evaluation.comparison import model_key
    from osteo.evaluation.runs import load_run

    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    cohort_dir = cohort_dir or run_cohort_folder(run)
    summary_path = cohort_dir / "cohort.json"
    if not summary_path.is_file():
        raise SystemExit(
            f"{run}: no cohort.json in {cohort_dir}; name the run's cohort folder as "
            f"{run}=<cohort folder>"
        )
    cohort = json.loads(summary_path.read_text(encoding="utf-8"))
    out = {
        "run": run.name,
        "model": model_key(load_run(run)),
        "generator_seed": int(cohort["seed"]),
    }
    for split in SPLITS:
        m = metrics.get(split, {})
        out[split] = {
            "auc": m.get("auc"),
            "auc_ci": m.get("auc_ci"),
            "oracle": cohort["cohorts"][split]["oracle_auc"],
        }
    return out


def summarise(runs: list[dict]) -> dict:
    summary: dict = {}
    for model in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == model]
        summary[model] = {"runs": mine}
        for split in SPLITS:
            aucs = [r[split]["auc"] for r in mine if r[split]["auc"] is not None]
            oracles = [r[split]["oracle"] for r in mine if r[split]["auc"] is not None]
            gaps = [o - a for o, a in zip(oracles, aucs, strict=True)]
            sd = statistics.stdev if len(aucs) > 1 else (lambda values: 0.0)
            summary[model][split] = {
                "n_runs": len(aucs),
                "auc_mean": statistics.fmean(aucs) if aucs else None,
                "auc_sd": sd(aucs) if aucs else None,
                "oracle_mean": statistics.fmean(oracles) if oracles else None,
                "gap_mean": statistics.fmean(gaps) if gaps else None,
                "gap_sd": sd(gaps) if gaps else None,
            }
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "runs",
        nargs="+",
        help="run folders (runs/<name>), each optionally =<its cohort folder> when the run's "
        "config.yaml does not lead to it (a redacted data.manifest outside data.synthetic.root)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "generator_seeds.json")
    args = parser.parse_args(argv)

    runs = []
    for word in args.runs:
        run, _, cohort = word.partition("=")
        runs.append(run_figures(Path(run), Path(cohort) if cohort else None))
    summary = summarise(runs)
    rows = []
    for model, figures in summary.items():
        for split in SPLITS:
            s = figures[split]
            if not s["n_runs"]:
                continue
            rows.append(
                (
                    f"{model} {split}",
                    f"AUC {s['auc_mean']:.3f} +- {s['auc_sd']:.3f}, oracle {s['oracle_mean']:.3f},"
                    f" gap {s['gap_mean']:.3f} +- {s['gap_sd']:.3f} ({s['n_runs']} cohorts)",
                )
            )
        for run in figures["runs"]:
            for split in SPLITS:
                r = run[split]
                if r["auc"] is None:
                    continue
                low, high = r["auc_ci"]
                rows.append(
                    (
                        f"  seed {run['generator_seed']} {split}",
                        f"{r['auc']:.3f} ({low:.3f}-{high:.3f}), oracle {r['oracle']:.3f}",
                    )
                )
    print_table(rows, "Over generator seeds")
    write_json(args.out, {"summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
