"""End-to-end smoke tests of the main command on the tiny synthetic cohort."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Every test here runs the main command end to end: the slow lane.
pytestmark = pytest.mark.slow


def fit(tmp_path: Path, manifest: Path, config: str, *overrides: str, timeout: int = 600):
    env = {**os.environ, "WANDB_SILENT": "true", "MPLBACKEND": "Agg"}
    command = [
        sys.executable,
        str(ROOT / "tools" / "fit.py"),
        "--config",
        str(ROOT / "configs" / config),
        f"data.manifest={manifest}",
        f"output_dir={tmp_path / 'runs'}",
        f"cache_dir={tmp_path / 'cache'}",
        "data.split.val_fraction=0.3",
        "trainer.enable_progress_bar=false",
        "train.n_bootstrap=50",
        "train.batch_size=8",
        f"radiomics.params={ROOT / 'configs' / 'radiomics' / 'default.yaml'}",
        *overrides,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def stages(run_dir: Path) -> dict:
    return json.loads((run_dir / "stages.json").read_text())["stages"]


FAST = ("segmentation.masks=manifest", "train.max_epochs=2", "train.crop_spacing_mm=2.3")


def test_main_command_writes_the_run_folder_and_reuses_every_stage(tmp_path, tiny_cohort):
    result = fit(tmp_path, tiny_cohort, "fusion_all.yaml", *FAST)
    run = tmp_path / "runs" / "fusion_all"
    for name in (
        "config.yaml",
        "splits.csv",
        "stages.json",
        "predictions.csv",
        "metrics.json",
        "report.md",
        "rois.csv",
        "excluded.csv",
        "scalers.json",
        "checkpoints/model.ckpt",
        "roc_internal_test.png",
        "roc_external_test.png",
        "reliability.png",
        "calibration_curve.png",
        "decision_curve.png",
        "decision_curve.csv",
        "logs/classifier/metrics.csv",
        "training_curves.png",
    ):
        assert (run / name).is_file(), name
    predictions = pd.read_csv(run / "predictions.csv")
    assert {"study_id", "split", "probability", "label"} <= set(predictions.columns)
    assert set(predictions["split"]) == {"val", "internal_test", "external_test"}
    assert "patient_id" not in predictions.columns  # hashed, never the identifier
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("val", "internal_test", "external_test"):
        assert {
            "auc",
            "auc_ci",
            "sensitivity",
            "specificity",
            "threshold",
            "n",
            "n_positive",
            "auc_ci_method",
            "rates_ci_method",
            "decision_curve",
            "triage",
        } <= set(metrics[split])
    # The class weighting is undone in the written probabilities (prior shift).
    assert "probability_uncorrected" in predictions.columns
    assert metrics["settings"]["prior_shift_corrected"]
    recorded = stages(run)
    assert list(recorded) == [
        "data",
        "segmentation",
        "roi",
        "radiomics",
        "classifier",
        "evaluation",
    ]
    assert recorded["radiomics"]["figures"]["n_features"] == 660
    # Each stage's wall time and peak memory, in stages.json and in the printed summary.
    assert all(s["wall_s"] >= 0 and 50 < s["peak_rss_mb"] < 64_000 for s in recorded.values())
    assert "peak RSS" in result.stdout and " MB " in result.stdout
    assert "AUC" in result.stdout and "external_test" in result.stdout
    assert list((run / "wandb").glob("offline-run-*")), "W&B offline run missing"

    sheets = sorted((run / "overlays").glob("rois_*.png"))
    assert sheets and (run / "overlays" / "contact_sheets.key").is_file()
    drawn = {p: p.stat().st_mtime_ns for p in sheets}

    fit(tmp_path, tiny_cohort, "fusion_all.yaml", *FAST)
    again = stages(run)
    assert again["roi"]["status"] == "reused"
    assert again["radiomics"]["status"] == "reused"
    assert again["classifier"]["status"] == "reused"
    # A warm run keeps the contact sheets (same studies, images, masks and boxes).
    assert {p: p.stat().st_mtime_ns for p in sheets} == drawn
    # A sheet that went missing is drawn again.
    sheets[0].unlink()
    fit(tmp_path, tiny_cohort, "fusion_all.yaml", *FAST)
    assert sheets[0].is_file()


def test_clinical_head_never_loads_images_or_texture(tmp_path, tiny_cohort):
    fit(tmp_path, tiny_cohort, "fusion_clinical.yaml", *FAST)
    run = tmp_path / "runs" / "fusion_clinical"
    recorded = stages(run)
    assert recorded["radiomics"]["status"] == "skipped"
    assert recorded["classifier"]["figures"]["inputs"] == ["clinical"]
    train_file = next((tmp_path / "cache" / "datasets").glob("*/train.pt"))
    data = torch.load(train_file, weights_only=True)
    assert "right" not in data and "texture" not in data


def test_resume_continues_from_last_checkpoint(tmp_path, tiny_cohort):
    overrides = (*FAST[:1], "train.crop_spacing_mm=2.3", "model.head=deep_clinical")
    fit(tmp_path, tiny_cohort, "fusion_deep_clinical.yaml", *overrides, "train.max_epochs=2")
    run = tmp_path / "runs" / "fusion_deep_clinical"
    (run / "checkpoints" / "model.ckpt").unlink()  # as if killed before the end
    fit(
        tmp_path,
        tiny_cohort,
        "fusion_deep_clinical.yaml",
        *overrides,
        "train.max_epochs=3",
        "resume=true",
    )
    record = stages(run)["classifier"]
    # max_epochs changed, so the settings differ: resuming would mix two trainings.
    assert "ignored" in record["note"]


def test_segmentation_config_trains_and_reports_dice(tmp_path, tiny_cohort):
    fit(
        tmp_path,
        tiny_cohort,
        "seg_unet.yaml",
        "segmentation.max_epochs=1",
        "segmentation.channels=[4,8,16]",
        "segmentation.spatial_size=[96,96]",
        "segmentation.spacing_mm=5.0",
        "segmentation.max_train_studies=8",
        "segmentation.max_val_studies=4",
        "segmentation.batch_size=4",
    )
    run = tmp_path / "runs" / "seg_unet"
    record = stages(run)["segmentation"]
    assert record["status"] == "ran"
    assert set(record["figures"]["dice"]) >= {"internal_test", "external_test"}
    assert record["figures"]["masks"] == 40
    fit(
        tmp_path,
        tiny_cohort,
        "seg_unet.yaml",
        "segmentation.max_epochs=1",
        "segmentation.channels=[4,8,16]",
        "segmentation.spatial_size=[96,96]",
        "segmentation.spacing_mm=5.0",
        "segmentation.max_train_studies=8",
        "segmentation.max_val_studies=4",
        "segmentation.batch_size=4",
    )
    again = stages(run)["segmentation"]
    assert again["status"] == "reused" and again["figures"]["mask_cache_hits"] == 40


def test_bad_config_fails_before_any_stage(tmp_path, tiny_cohort):
    command = [
        sys.executable,
        str(ROOT / "tools" / "fit.py"),
        "--config",
        str(ROOT / "configs" / "fusion_all.yaml"),
        "model.head=deep_bones",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert "model.head" in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path, tiny_cohort):
    fit(
        tmp_path,
        tiny_cohort,
        "fusion_deep_clinical.yaml",
        *FAST,
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        timeout=900,
    )
    run = tmp_path / "runs" / "fusion_deep_clinical"
    assert (run / "metrics.json").is_file()
    predictions = pd.read_csv(run / "predictions.csv")
    assert not predictions["study_id"].duplicated().any()  # no DDP padding duplicates


def test_extract_radiomics_fills_the_store_then_reuses_it(tmp_path, tiny_cohort):
    command = [
        sys.executable,
        str(ROOT / "tools" / "extract_radiomics.py"),
        "--config",
        str(ROOT / "configs" / "fusion_all.yaml"),
        "--workers",
        "2",
        f"data.manifest={tiny_cohort}",
        f"output_dir={tmp_path / 'runs'}",
        f"cache_dir={tmp_path / 'cache'}",
        "segmentation.masks=manifest",
        "trainer.enable_progress_bar=false",
        "roi.overlays=none",
        f"radiomics.params={ROOT / 'configs' / 'radiomics' / 'default.yaml'}",
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "40 studies x 660 features, 0 from the store" in first.stdout
    tables = sorted(p.name for p in (tmp_path / "runs" / "fusion_all" / "radiomics").glob("*.pt"))
    assert tables == ["external_test.pt", "internal_test.pt", "train.pt", "val.pt"]
    second = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert "40 from the store, 0 extracted" in second.stdout
