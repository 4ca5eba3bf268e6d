"""Smoke tests of the benchmark scripts at a tiny size, so they cannot rot unnoticed.

The figures at these sizes mean nothing; the tests check that each script runs end to end and
writes its JSON with the documented names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(script: str, *args: str, cwd: Path, timeout: int = 600) -> dict:
    out = cwd / f"{script}.json"
    env = {**os.environ, "WANDB_SILENT": "true", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


def test_training_benchmark_compares_lightning_with_a_bare_loop(tmp_path):
    figures = bench(
        "bench_training",
        "--steps=2",
        "--warmup=1",
        "--batch-size=4",
        "--crop-size=32",
        "--repeats=1",
        cwd=tmp_path,
    )
    for key in (
        "bare_images_per_second",
        "lightning_images_per_second",
        "lightning_overhead_ratio",
        "loader_seconds_per_batch",
        "step_seconds_per_batch",
    ):
        assert figures[key] > 0, key
    assert figures["targets"]["lightning_overhead_ratio"] == 1.15
    assert figures["environment"]["cpus"] >= 1


@pytest.mark.slow
def test_inference_benchmark_times_each_part(tmp_path, tiny_cohort):
    figures = bench(
        "bench_inference", f"--manifest={tiny_cohort}", "--studies=1", "--repeats=1", cwd=tmp_path
    )
    for part in ("segmentation", "roi", "read", "crops", "radiomics", "classifier"):
        assert figures[f"{part}_seconds_median"] > 0, part
    assert figures["total_seconds_per_radiograph"] > figures["total_without_radiomics_seconds"]


@pytest.mark.slow
def test_pipeline_benchmark_times_a_cold_and_a_warm_run(tmp_path, tiny_cohort):
    figures = bench(
        "bench_pipeline",
        f"--manifest={tiny_cohort}",
        "model.head=clinical",
        "segmentation.masks=manifest",
        "train.max_epochs=1",
        "data.split.val_fraction=0.3",
        "train.n_bootstrap=50",
        "logger.mode=disabled",
        "roi.overlays=none",
        cwd=tmp_path,
    )
    assert figures["cold_seconds"] > 0 and figures["warm_seconds"] > 0
    assert figures["warm_to_cold_ratio"] == pytest.approx(
        figures["warm_seconds"] / figures["cold_seconds"], abs=0.01
    )
    assert figures["warm_stage_status"]["classifier"] == "reused"
    assert figures["warm_stage_status"]["roi"] == "reused"


@pytest.mark.slow
def test_radiomics_benchmark_runs_at_a_tiny_size(tmp_path):
    figures = bench("bench_radiomics", "--studies=2", "--repeats=1", cwd=tmp_path)
    assert figures["rois_per_second_plain_loop"] > 0
    assert figures["cache_speedup"] > 0


def test_synthetic_oracle_seeds_reports_the_spread_and_the_reference_check(tmp_path):
    figures = bench(
        "synthetic_oracle_seeds", "--preset=tiny", "--seeds=2", "--large=3000", cwd=tmp_path
    )
    assert figures["seeds"] == 2 and len(figures["per_seed"]) == 2
    for cohort in ("development", "internal_test", "external_test"):
        spread = figures["spread"][cohort]
        for key in ("oracle", "image_only", "clinical_only", "clinical_gain"):
            assert spread[key]["min"] <= spread[key]["mean"] <= spread[key]["max"], key
        assert 0.5 < figures["large_sample"]["aucs"][cohort]["oracle"] <= 1.0
    check = figures["neck_minus_pelvis"]
    assert check["right_difference"] == pytest.approx(
        check["right_neck_minus_pelvis_auc"] - check["right_neck_auc"], abs=1e-3
    )


def test_synthetic_render_benchmark_runs_at_a_tiny_size(tmp_path):
    result = bench("bench_synthetic", "--studies=3", "--renders=1", "--repeats=1", cwd=tmp_path)
    figures = result.get("figures", result)
    for site in ("A", "B"):
        assert figures[f"render_seconds_archive_{site}"] > 0
        assert figures[f"render_seconds_native_{site}"] > figures[f"render_seconds_archive_{site}"]
    assert figures["generate_studies"] == 3 and figures["generate_wall_seconds"] > 0


def test_reference_check_reads_the_images_and_reports_both_aucs(tmp_path, tiny_cohort):
    result = bench("synthetic_reference_check", f"--cohort={tiny_cohort.parent}", cwd=tmp_path)
    cohorts = result["figures"]["cohorts"]
    assert set(cohorts) <= {"development", "internal_test", "external_test"} and cohorts
    for figures in cohorts.values():
        for key in ("auc_neck", "auc_neck_minus_pelvis", "auc_pelvis"):
            assert 0.0 <= figures[key] <= 1.0, key
        assert figures["difference"] == pytest.approx(
            figures["auc_neck_minus_pelvis"] - figures["auc_neck"]
        )


@pytest.mark.slow
def test_site_swap_pairs_each_external_study_with_its_internal_twin(tmp_path):
    result = bench(
        "site_swap",
        "--preset=quickstart",
        "--heads",
        "texture",
        f"--workdir={tmp_path / 'work'}",
        # The generator's exact masks: a one-epoch U-Net's masks are not assessable, and the
        # test is about pairing the two renders, not segmentation.
        "segmentation.masks=manifest",
        "train.max_epochs=1",
        "logger.mode=disabled",
        cwd=tmp_path,
        timeout=900,
    )
    texture = result["figures"]["heads"]["texture"]
    # The quickstart preset's internal test cohort is rendered again at site B, study by study.
    assert texture["n_pairs"] >= 10 and texture["n_positive"] >= 2
    assert texture["drop"] == pytest.approx(texture["auc_site_a"] - texture["auc_site_b"])
    assert texture["drop_ci_low"] <= texture["drop"] <= texture["drop_ci_high"]


@pytest.mark.slow
def test_generator_seeds_summarises_runs_against_their_cohorts_oracle(tmp_path, tiny_run):
    run = f"{tiny_run.run_dir}={tiny_run.manifest.parent}"
    result = bench("generator_seeds", run, run, cwd=tmp_path)
    figures = result["summary"]["fusion_all"]
    for split in ("internal_test", "external_test"):
        s = figures[split]
        assert s["n_runs"] == 2 and s["auc_sd"] == pytest.approx(0.0)
        run = figures["runs"][0][split]
        assert s["gap_mean"] == pytest.approx(run["oracle"] - run["auc"])


@pytest.mark.slow
def test_fullres_benchmark_runs_one_native_study_through_every_stage(tmp_path):
    figures = bench("bench_fullres", "--studies=2", "--workers=1", "--seg-epochs=0", cwd=tmp_path)
    assert figures["studies"] == 2
    assert set(figures["seconds_per_study_by_stage"]) == {
        "data",
        "segmentation",
        "roi",
        "radiomics",
        "crops",
    }
    assert all(v > 0 for v in figures["seconds_per_study_by_stage"].values())
    assert figures["peak_rss_mb"]["sum_upper_bound"] > 0
    assert figures["projection"]["studies"] == 5865
    assert {site: r["megapixels"] for site, r in figures["by_site"].items()} == {
        "A": 6.69,
        "B": 9.57,
    }


@pytest.mark.slow
def test_resolution_study_radiomics_part_compares_spacings(tmp_path):
    figures = bench(
        "resolution_study",
        "radiomics",
        "--studies=6",
        "--workers=0",
        "--radiomics-spacings",
        "none",
        "1.0",
        cwd=tmp_path,
    )
    assert figures["n_studies"] == 6
    assert set(figures["agreement"]) == {"native_A_vs_B", "archive_A_vs_B", "native_vs_archive"}
    for by_spacing in figures["agreement"].values():
        assert set(by_spacing) == {"none", "1.0"}
        assert all(-1.0 <= a["median_rank_icc"] <= 1.0 for a in by_spacing.values())


@pytest.mark.slow
def test_resolution_study_heads_part_scores_every_arm_on_the_same_test_studies(tmp_path):
    figures = bench(
        "resolution_study",
        "heads",
        "--train=4",
        "--test=4",
        "--epochs=1",
        "--workers=0",
        "--cache",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    assert (figures["n_train"], figures["n_test"], figures["test_positives"]) == (4, 4, 2)
    assert figures["crop_arms_mm_spacing_pixels"] == {
        "0.25": [80.0, 0.25, 320],
        "0.5": [80.0, 0.5, 160],
        "1": [80.0, 1.0, 80],
        "default": [110.4, 1.15, 96],
    }
    assert set(figures["results"]["texture"]) == {"0.25", "0.5", "1"}
    for head in ("texture", "deep"):
        for arm, result in figures["results"][head].items():
            assert 0.0 <= result["auc"] <= 1.0
            assert ("vs_1mm" in result) == (arm != "1")
    # Every study was rendered once and cached: its crops and features for every arm.
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 8
