"""Site-swap study: how much does a model trained at site A lose on site B's radiographs?

    python benchmarks/site_swap.py                           # default preset, texture + deep heads
    python benchmarks/site_swap.py --preset tiny train.max_epochs=1 segmentation.max_epochs=1

The synthetic generator can render the internal test cohort's studies a second time at site B
(``data.synthetic.site_swap=true``: the same patients, bones, labels and random draws; site B's
detector, console processing, archive spacing and positioning habits). The main command then
trains each head on site A's development cohort as usual and scores both renders: the internal
test set is the site-A render, the external test set the site-B render of the very same
studies. The AUC difference is therefore the site effect alone, with no population or
prevalence change, and it is paired: Obuchowski's clustered paired test (by patient) gives its
standard error and p-value.

For each head (``--heads``, default ``texture deep``: ``configs/fusion_<head>.yaml``) it runs
``tools/fit.py`` in ``--workdir`` (one cache, so segmentation and radiomics are computed once)
and reads the run's ``predictions.csv`` against the cohort's ``latent.csv`` (``swap_of``: the
internal study each external copy re-renders). Runs use ``logger.log_identifiers=true`` so
predictions carry the synthetic study ids (non-identifying) that ``latent.csv`` pairs.

Figures (JSON ``benchmarks/results/site_swap.json``), per head: ``auc_site_a``, ``auc_site_b``,
``drop`` (A - B), ``drop_ci_low``/``drop_ci_high`` (95% Wald, clustered by patient),
``p_value``; the issue's target for texture and deep heads is a drop of 0.02-0.10 (the
reference study lost 0.04-0.06 at its external site).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from common import (
    RESULTS,
    ROOT,
    environment,
    load_average,
    print_table,
    run_cohort_folder,
    run_fit,
    write_json,
)
from scipy import stats

TARGET_DROP = (0.02, 0.10)


def run_head(head: str, work: Path, cache: Path, overrides: list[str]) -> tuple[Path, float]:
    """One ``tools/fit.py`` run of ``configs/fusion_<head>.yaml`` on the site-swap cohort."""
    name = f"siteswap_{head}"
    config = ROOT / "configs" / f"fusion_{head}.yaml"
    run_overrides = [
        f"name={name}",
        "data.synthetic.site_swap=true",
        f"data.synthetic.root={work / 'data'}",
        f"cache_dir={cache}",
        f"output_dir={work / 'runs'}",
        "logger.log_identifiers=true",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]
    seconds = run_fit(config, run_overrides, work / f"{name}.log")
    return work / "runs" / name, seconds


def paired_site_drop(predictions: pd.DataFrame, latent: pd.DataFrame) -> dict:
    """AUC at A and B of the same studies, and the clustered paired test of their difference."""
    from osteo.evaluation.clustered import clustered_paired_test

    internal = predictions[predictions["split"] == "internal_test"].set_index("study_id")
    external = predictions[predictions["split"] == "external_test"].set_index("study_id")
    pairs = latent.loc[latent["swap_of"].notna(), ["study_id", "swap_of"]]
    pairs = pairs[pairs["study_id"].isin(external.index) & pairs["swap_of"].isin(internal.index)]
    if pairs.empty:
        raise SystemExit(
            "no external study of the run pairs with an internal one: is the cohort a "
            "site-swap cohort (latent.csv column swap_of) and were identifiers logged?"
        )
    a = internal.loc[pairs["swap_of"].to_numpy()]
    b = external.loc[pairs["study_id"].to_numpy()]
    labels_a, labels_b = a["label"].to_numpy(int), b["label"].to_numpy(int)
    if not np.array_equal(labels_a, labels_b):
        raise SystemExit("a swapped study's label differs between its two renders")
    patients = latent.set_index("study_id").loc[pairs["swap_of"].to_numpy(), "patient_id"]
    try:
        result = clustered_paired_test(
            labels_a, a["probability"].to_numpy(), b["probability"].to_numpy(), patients.to_numpy()
        )
    except ValueError as err:  # too few patients of a class for the clustered variance
        message = f"the site-swap test set is too small for a paired AUC test: {err}"
        raise SystemExit(message) from None
    half = stats.norm.ppf(0.975) * np.sqrt(result.variance)
    return {
        "n_pairs": int(result.n),
        "n_patients": int(result.n_patients),
        "n_positive": int(labels_a.sum()),
        "auc_site_a": float(result.auc_a),
        "auc_site_b": float(result.auc_b),
        "drop": float(result.difference),
        "drop_ci_low": float(result.difference - half),
        "drop_ci_high": float(result.difference + half),
        "p_value": float(result.p_value),
        "within_target": bool(TARGET_DROP[0] <= result.difference <= TARGET_DROP[1]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="default", choices=["tiny", "quickstart", "default"])
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--heads", nargs="+", default=["texture", "deep"])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs_site_swap")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="the runs' cache (default: <workdir>/cache); the main command's cache lets the "
        "site-swap cohort reuse its U-Net and development features (same images)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "site_swap.json")
    parser.add_argument("overrides", nargs="*", help="key=value for fit.py")
    args = parser.parse_args(argv)

    env = environment()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cache = (args.cache_dir or work / "cache").resolve()
    overrides = [
        f"data.synthetic.preset={args.preset}",
        f"data.synthetic.seed={args.seed}",
        *args.overrides,
    ]
    figures: dict = {"preset": args.preset, "generator_seed": args.seed, "heads": {}}
    for head in args.heads:
        run_dir, seconds = run_head(head, work, cache, overrides)
        predictions = pd.read_csv(run_dir / "predictions.csv", dtype={"study_id": str})
        manifest = run_cohort_folder(run_dir)
        latent = pd.read_csv(manifest / "latent.csv", dtype={"study_id": str, "swap_of": str})
        figures["heads"][head] = {**paired_site_drop(predictions, latent), "seconds": seconds}

    figures["target_drop"] = list(TARGET_DROP)
    env["load_average_1min_at_end"] = load_average()
    rows = []
    for head, res in figures["heads"].items():
        rows += [
            (f"{head}: AUC site A", res["auc_site_a"]),
            (f"{head}: AUC site B (same studies)", res["auc_site_b"]),
            (
                f"{head}: drop (95% CI)",
                f"{res['drop']:.3f} ({res['drop_ci_low']:.3f} to {res['drop_ci_high']:.3f})",
            ),
            (f"{head}: p (clustered paired)", res["p_value"]),
        ]
    print_table(rows, f"Site swap, preset {args.preset}, generator seed {args.seed}")
    write_json(args.out, {"environment": env, "figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
