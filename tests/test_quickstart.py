"""A new user's first hour: cohort folders, exit codes, degenerate splits, the run header."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from osteo.config import ConfigError, load_config
from osteo.data.manifest import ManifestError, ManifestProblem
from osteo.data.synthetic.generate import GENERATOR_VERSION
from osteo.data.synthetic.location import (
    cohort_mismatch,
    made_by_older_generator,
    synthetic_manifest_path,
)
from osteo.evaluation.report import compute_run_metrics, evaluate_run
from osteo.evaluation.runs import EvaluationInputError
from osteo.pipeline.context import RunContext, StageRecord
from osteo.pipeline.distributed import build_trainer
from osteo.pipeline.errors import (
    EXIT_CODES,
    NoUsableStudiesError,
    exit_code_for,
    exit_codes_help,
    one_line,
)
from osteo.pipeline.plan import format_run_header, record_timings

ROOT = Path(__file__).resolve().parents[1]
FIT = [sys.executable, str(ROOT / "tools" / "fit.py")]


# --------------------------------------------------------------------- cohort folders


def test_each_synthetic_setting_gets_its_own_folder_and_a_given_manifest_is_kept():
    base = ROOT / "configs" / "fusion_all.yaml"
    default = load_config(base).data.manifest
    tiny = load_config(base, ["data.synthetic.preset=tiny"]).data.manifest
    png = load_config(base, ["data.synthetic.preset=tiny", "data.synthetic.format=png"])
    assert default == "data/synthetic/default-seed0-dicom/manifest.csv"
    assert tiny == "data/synthetic/tiny-seed0-dicom/manifest.csv"
    assert png.data.manifest == "data/synthetic/tiny-seed0-png/manifest.csv"
    sized = load_config(base, ["data.synthetic.n_studies=50", "data.synthetic.seed=3"])
    assert sized.data.manifest == "data/synthetic/default-n50-seed3-dicom/manifest.csv"
    fine = load_config(base, ["data.synthetic.spacing_mm=0.3"]).data.manifest
    full = load_config(base, ["data.synthetic.fullres=true"]).data.manifest
    assert fine == "data/synthetic/default-seed0-dicom-sp0.3mm/manifest.csv"
    assert full == "data/synthetic/default-seed0-dicom-fullres/manifest.csv"
    mine = load_config(base, ["data.manifest=my_data/manifest.csv"]).data.manifest
    assert mine == "my_data/manifest.csv"


def test_a_cohort_made_with_other_settings_is_said_in_one_line(tmp_path):
    cfg = load_config(ROOT / "configs" / "fusion_all.yaml", ["data.synthetic.preset=tiny"])
    manifest = tmp_path / "manifest.csv"
    assert cohort_mismatch(manifest, cfg.data.synthetic) is None  # no cohort.json: user data
    summary = {
        "generator": "osteo.data.synthetic",
        "preset": "default",
        "seed": 0,
        "format": "dicom",
        "studies": 1500,
        "generator_version": GENERATOR_VERSION,
    }
    (tmp_path / "cohort.json").write_text(json.dumps(summary))
    line = cohort_mismatch(manifest, cfg.data.synthetic)
    assert line is not None and "\n" not in line
    assert "preset default (config: tiny)" in line
    summary["preset"] = "tiny"
    (tmp_path / "cohort.json").write_text(json.dumps(summary))
    assert cohort_mismatch(manifest, cfg.data.synthetic) is None
    summary["spacing"] = "native"  # a --fullres cohort where the config asks for the archive's
    (tmp_path / "cohort.json").write_text(json.dumps(summary))
    assert "spacing native (config: archive)" in cohort_mismatch(manifest, cfg.data.synthetic)
    summary["spacing"] = "archive"
    summary["generator_version"] = GENERATOR_VERSION - 1  # made before the generator changed
    (tmp_path / "cohort.json").write_text(json.dumps(summary))
    assert "generator version" in cohort_mismatch(manifest, cfg.data.synthetic)
    summary["generator_version"] = GENERATOR_VERSION
    summary["site_swap"] = True
    (tmp_path / "cohort.json").write_text(json.dumps(summary))
    assert "site_swap True (config: False)" in cohort_mismatch(manifest, cfg.data.synthetic)


def test_only_the_configured_folder_of_an_older_generator_is_made_again(tmp_path):
    cfg = load_config(
        ROOT / "configs" / "fusion_all.yaml",
        ["data.synthetic.preset=tiny", f"data.synthetic.root={tmp_path / 'synthetic'}"],
    )
    own = synthetic_manifest_path(cfg.data.synthetic.root, cfg.data.synthetic)
    elsewhere = tmp_path / "mine" / "manifest.csv"
    for manifest in (own, elsewhere):
        manifest.parent.mkdir(parents=True)
        summary = {"generator": "osteo.data.synthetic", "generator_version": GENERATOR_VERSION - 1}
        (manifest.parent / "cohort.json").write_text(json.dumps(summary))
    assert made_by_older_generator(own, cfg.data.synthetic)
    assert not made_by_older_generator(elsewhere, cfg.data.synthetic)  # the user's choice
    summary["generator_version"] = GENERATOR_VERSION
    (own.parent / "cohort.json").write_text(json.dumps(summary))
    assert not made_by_older_generator(own, cfg.data.synthetic)


# --------------------------------------------------------------------- exit codes


def test_every_expected_error_has_its_own_exit_code_listed_in_help():
    codes = [entry.code for entry in EXIT_CODES]
    assert len(codes) == len(set(codes)), "two error classes share an exit code"
    assert 0 not in codes and 1 not in codes
    text = exit_codes_help()
    for entry in EXIT_CODES:
        assert f"{entry.code}" in text and entry.error in text
    help_text = subprocess.run([*FIT, "--help"], capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "exit codes:" in help_text.stdout
    problem = ManifestProblem(3, "age", "abc", "a number")
    cases = {
        ConfigError("bad key"): 2,
        ManifestError("m.csv", [problem, problem, problem]): 3,
        FileNotFoundError("x"): 4,
        NoUsableStudiesError("none"): 6,
        EvaluationInputError("bad"): 9,
    }
    for err, code in cases.items():
        assert exit_code_for(err).code == code
        assert "\n" not in one_line(err)
    assert exit_code_for(ValueError("a bug")) is None  # keeps its traceback
    assert "and 1 more" in one_line(ManifestError("m.csv", [problem, problem]))


# --------------------------------------------------------------------- degenerate splits


def _predictions(val_labels, test_labels, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for split, labels in (
        ("val", val_labels),
        ("internal_test", test_labels),
        ("external_test", [0, 1] * 6),
    ):
        for i, label in enumerate(labels):
            rows.append(
                {
                    "study_id": f"{split}-{i}",
                    "split": split,
                    "label": label,
                    "probability": float(
                        np.clip(0.3 + 0.4 * label + rng.normal(0, 0.15), 0.01, 0.99)
                    ),
                    "patient_id_hash": f"{split}-p{i}",
                    "sex": "F",
                    "age": 70.0,
                }
            )
    return pd.DataFrame(rows)


def test_val_of_one_class_gives_aucs_and_says_no_threshold(tmp_path):
    table = _predictions([0] * 8, [0, 1] * 6)
    table.to_csv(tmp_path / "predictions.csv", index=False)
    metrics = evaluate_run(tmp_path, n_bootstrap=20)
    note = metrics["settings"]["threshold_note"]
    assert note.startswith("threshold not chosen: val has one class")
    assert metrics["val"]["auc"] is None and metrics["val"]["threshold"] is None
    assert metrics["internal_test"]["auc"] > 0.5 and metrics["internal_test"]["auc_ci"]
    assert metrics["internal_test"]["sensitivity"] is None
    assert any("no threshold" in m for m in metrics["internal_test"]["missing"])
    report = (tmp_path / "report.md").read_text()
    assert note in report and "Not computed" in report
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["threshold_note"]


def test_a_test_split_of_one_class_keeps_the_other_figures():
    metrics = compute_run_metrics(_predictions([0, 1] * 5, [1] * 5), n_bootstrap=20)
    internal = metrics["internal_test"]
    assert internal["auc"] is None and internal["auc_ci_method"].endswith("one class")
    assert internal["ece"] is not None and internal["n_positive"] == 5
    assert metrics["val"]["threshold"] is not None and metrics["external_test"]["auc"] > 0.5


# --------------------------------------------------------------------- header and tips


def test_header_lists_the_stages_and_estimates_from_earlier_timings(tmp_path, capsys):
    cfg = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"output_dir={tmp_path / 'runs'}",
            f"cache_dir={tmp_path / 'cache'}",
            f"data.synthetic.root={tmp_path / 'data'}",
        ],
    )
    ctx = RunContext(cfg)
    header = format_run_header(cfg, ctx.run_dir, ctx.cache_dir)
    assert "6 stages" in header and "no estimate yet" in header
    assert "make the synthetic cohort 'quickstart' (80 studies)" in header
    records = [
        StageRecord(n, status="ran", wall_s=8.0)
        for n in ("segmentation", "roi", "radiomics", "classifier", "evaluation")
    ]
    records.insert(
        0, StageRecord("data", status="ran", wall_s=4.0, note="made the synthetic cohort")
    )
    record_timings(cfg, ctx.cache_dir, records, 80)
    assert "time: about" in format_run_header(cfg, ctx.run_dir, ctx.cache_dir)
    # The second run reads the cohort the first one made: reading was never timed, the other
    # stages were, so the estimate stands and names what it leaves out.
    manifest = Path(cfg.data.manifest)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("study_id\n" + "".join(f"S{i}\n" for i in range(80)))
    header = format_run_header(cfg, ctx.run_dir, ctx.cache_dir)
    assert "time: about" in header and "plus data (not yet timed here)" in header
    ctx.plan = ("data", "segmentation")
    with ctx.stage("segmentation") as record:
        record.status = "ran"
    out = capsys.readouterr().out
    assert "[stage 2 of 2] segmentation ..." in out and "[stage 2 of 2] segmentation: ran" in out


def test_lightning_advertisements_are_filtered(tmp_path, caplog):
    cfg = load_config(ROOT / "configs" / "quickstart.yaml")
    with caplog.at_level(logging.INFO):
        build_trainer(cfg.trainer, 1, tmp_path)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "litlogger" not in messages and "litmodels" not in messages
    assert "GPU available" in messages  # Lightning's other information still passes


# --------------------------------------------------------------------- end to end


def _fit(tmp_path: Path, manifest: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true", "MPLBACKEND": "Agg"}
    command = [
        *FIT,
        "--config",
        str(ROOT / "configs" / "fusion_clinical.yaml"),
        f"data.manifest={manifest}",
        f"output_dir={tmp_path / 'runs'}",
        f"cache_dir={tmp_path / 'cache'}",
        "trainer.enable_progress_bar=false",
        "logger.mode=disabled",
        "train.n_bootstrap=50",
        "train.max_epochs=2",
        "segmentation.masks=manifest",
        "data.allow_outside_paths=true",
        *overrides,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path
    )


def _default_splits(manifest_path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The validated manifest and the splits the default split settings give it with a val
    fraction of 0.3 (what these tests' runs ask for)."""
    from osteo.data.manifest import load_manifest, make_splits

    split_cfg = load_config(ROOT / "configs" / "fusion_clinical.yaml").data.split
    manifest = load_manifest(manifest_path, require_label=True)
    split = make_splits(
        manifest,
        split_cfg.internal_test_from,
        split_cfg.internal_test_to,
        split_cfg.internal_test_sites,
        split_cfg.external_test_sites,
        0.3,
        0,
    )
    return manifest, split


def test_segmentation_that_misses_every_femur_exits_with_one_line(tmp_path, tiny_cohort):
    # A mask source that finds no femur anywhere: every study's mask is blank (same size).
    table = pd.read_csv(tiny_cohort)
    table["image_path"] = [str(tiny_cohort.parent / p) for p in table["image_path"]]
    blanks = []
    for original in table["mask_path"]:
        width, height = Image.open(tiny_cohort.parent / original).size
        path = tmp_path / f"blank_{width}x{height}.png"
        if not path.is_file():
            Image.fromarray(np.zeros((height, width), dtype=np.uint8)).save(path)
        blanks.append(str(path))
    table["mask_path"] = blanks
    manifest = tmp_path / "manifest.csv"
    table.to_csv(manifest, index=False)
    result = _fit(tmp_path, manifest)
    assert result.returncode == 6, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "NoUsableStudiesError" in errors[0]
    assert "no usable train or val study" in errors[0]


def test_a_val_split_of_one_class_runs_to_the_end(tmp_path, tiny_cohort):
    table = pd.read_csv(tiny_cohort)
    manifest, split = _default_splits(tiny_cohort)
    split = split.to_numpy()
    # Every positive development study goes to train: val keeps only negatives.
    development = np.isin(split, ["train", "val"])
    split = np.where(development & (manifest["label"].to_numpy() == 1), "train", split)
    splits = tmp_path / "splits.csv"
    pd.DataFrame({"study_id": table["study_id"], "split": split}).to_csv(splits, index=False)
    result = _fit(tmp_path, tiny_cohort, f"data.split.splits_file={splits}")
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "fusion_clinical"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["settings"]["threshold_note"].startswith("threshold not chosen: val has one")
    assert metrics["internal_test"]["auc"] is not None
    assert "threshold not chosen" in (run / "report.md").read_text()


# --------------------------------------------------------------------- femur sides


def test_femur_sides_come_from_the_image_when_the_network_confuses_them():
    from osteo.segmentation.masks import postprocess_mask

    both_right = np.zeros((40, 60), np.uint8)
    both_right[5:30, 5:15] = 1  # image left: the patient's right femur
    both_right[5:30, 40:52] = 1  # image right, labelled "right" by an under-trained U-Net
    out = postprocess_mask(both_right)
    assert (out[5:30, 5:15] == 1).all() and (out[5:30, 40:52] == 2).all()
    swapped = np.where(both_right > 0, 0, 0).astype(np.uint8)
    swapped[5:30, 5:15], swapped[5:30, 40:52] = 2, 1
    assert (postprocess_mask(swapped) == out).all()
    one_femur = np.zeros((40, 60), np.uint8)
    one_femur[5:30, 40:52] = 2
    one_femur[2:4, 2:4] = 1  # a speck is no femur: the network's labels stand
    assert (postprocess_mask(one_femur)[5:30, 40:52] == 2).all()


@pytest.mark.slow
def test_ddp_with_predicted_masks_keeps_every_split_and_ends_cleanly(tmp_path, tiny_cohort):
    result = _fit(
        tmp_path,
        tiny_cohort,
        "segmentation.masks=predict",
        "segmentation.max_epochs=30",
        "segmentation.spacing_mm=5.0",
        "segmentation.spatial_size=[96,96]",
        "segmentation.batch_size=4",
        "segmentation.lr=0.004",
        "data.split.val_fraction=0.3",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stdout.count("osteo run 'fusion_clinical'") == 1  # one header, rank zero's
    run = tmp_path / "runs" / "fusion_clinical"
    manifest, expected = _default_splits(tiny_cohort)
    written = pd.read_csv(run / "splits.csv", dtype=str)
    assert written["split"].tolist() == list(expected)  # the same studies as one process
    predictions = pd.read_csv(run / "predictions.csv", dtype={"study_id": str})
    excluded = pd.read_csv(run / "excluded.csv", dtype={"study_id": str})
    # Run-folder tables name studies by their keyed pseudonyms (osteo.privacy; the test key
    # from conftest.py reaches the subprocess through the environment).
    from osteo.privacy import IdentifierPolicy

    names = IdentifierPolicy(clear=False)
    by_study = {
        names.study(s): split for s, split in zip(manifest["study_id"], expected, strict=True)
    }
    assert all(
        by_study[s] == split
        for s, split in zip(predictions["study_id"], predictions["split"], strict=True)
    )
    evaluated = {
        s for s, split in by_study.items() if split in ("val", "internal_test", "external_test")
    }
    assert set(predictions["study_id"]) | (set(excluded["study_id"]) & evaluated) == evaluated
