"""W&B sweeps: sweep files, run names, schema checks before any run, local runs, seed aggregate."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from osteo.sweeps import (
    SweepError,
    aggregate_over_seeds,
    load_sweep,
    name_from_overrides,
    plan_runs,
    sweep_from_dict,
)

ROOT = Path(__file__).resolve().parents[1]
FUSION_HEADS = ROOT / "configs" / "sweeps" / "fusion_heads.yaml"
BAYES = ROOT / "configs" / "sweeps" / "bayes_lr_wd_backbone.yaml"
FUSION_ALL = ROOT / "configs" / "fusion_all.yaml"


def sweep_tool(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600):
    env = {**os.environ, "WANDB_SILENT": "true", "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "sweep.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def write_sweep(path: Path, edit) -> Path:
    data = yaml.safe_load(FUSION_HEADS.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------- sweep files


def test_fusion_heads_sweep_is_every_head_times_three_seeds():
    spec = load_sweep(FUSION_HEADS)
    assert spec.method == "grid" and spec.config == "configs/fusion_all.yaml"
    plans = plan_runs(spec, FUSION_ALL)
    heads = {"clinical", "texture", "deep", "deep_clinical", "deep_texture_clinical"}
    assert {p.params["model.head"] for p in plans} == heads
    assert {p.params["seed"] for p in plans} == {0, 1, 2}
    assert len(plans) == 15
    assert len({p.name for p in plans}) == 15  # one run folder per parameter set
    assert "fusion_all__head-deep_clinical__seed-2" in {p.name for p in plans}


def test_bayes_sweep_needs_the_server_or_random_draws():
    spec = load_sweep(BAYES)
    assert spec.method == "bayes" and spec.metric == {"name": "val/auc", "goal": "maximize"}
    with pytest.raises(SweepError, match="--max-runs"):
        plan_runs(spec, FUSION_ALL)
    plans = plan_runs(spec, FUSION_ALL, max_runs=6, sample_seed=1)
    assert len(plans) == 6 and len({p.name for p in plans}) == 6
    for plan in plans:
        assert 1e-4 <= plan.params["model.lr"] <= 3e-3
        assert 1e-6 <= plan.params["model.weight_decay"] <= 1e-2
        assert 0.0 <= plan.params["model.dropout"] <= 0.5
        assert plan.params["model.backbone"] in {"small_cnn", "resnet10", "resnet18"}


def test_command_must_pass_key_value_overrides():
    data = yaml.safe_load(FUSION_HEADS.read_text())
    data["command"] = ["${env}", "${interpreter}", "${program}", "--config", "x.yaml", "${args}"]
    with pytest.raises(SweepError, match=r"args_no_hyphens.*--key=value"):
        sweep_from_dict(data)


def test_typo_in_a_swept_key_fails_before_any_run(tmp_path):
    sweep = write_sweep(
        tmp_path / "typo.yaml",
        lambda d: d["parameters"].update({"model.haed": d["parameters"].pop("model.head")}),
    )
    result = sweep_tool("local", str(sweep), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2
    assert "parameter 'model.haed'" in result.stderr
    assert "Unknown config key 'model.haed'" in result.stderr
    assert "Valid keys at 'model'" in result.stderr and "head" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_bad_value_and_unknown_extra_override_fail_before_any_run(tmp_path):
    sweep = write_sweep(
        tmp_path / "bad.yaml", lambda d: d["parameters"]["model.head"]["values"].append("bones")
    )
    result = sweep_tool("local", str(sweep), cwd=tmp_path)
    assert result.returncode == 2 and "model.head" in result.stderr and "bones" in result.stderr
    result = sweep_tool("local", str(FUSION_HEADS), "train.max_epoch=1", cwd=tmp_path)
    assert result.returncode == 2 and "Unknown config key 'train.max_epoch'" in result.stderr
    result = sweep_tool("local", str(FUSION_HEADS), "model.head=deep", cwd=tmp_path)
    assert result.returncode == 2 and "--only model.head" in result.stderr
    assert not (tmp_path / "runs").exists()


# Waits for the W&B client to give up on the server: slow lane.
@pytest.mark.slow
def test_create_fails_clearly_without_the_wandb_server(tmp_path):
    closed = {"WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_MODE": ""}
    result = sweep_tool("create", str(FUSION_HEADS), cwd=tmp_path, env=closed)
    assert result.returncode == 2
    assert "cannot be reached" in result.stderr and "tools/sweep.py local" in result.stderr
    result = sweep_tool("create", str(FUSION_HEADS), cwd=tmp_path, env={"WANDB_MODE": "offline"})
    assert result.returncode == 2 and "WANDB_MODE=offline" in result.stderr


# --------------------------------------------------------------------------- run names


def test_run_names_leave_out_where_and_how_a_run_logs():
    base = name_from_overrides("fusion_all", ["model.head=deep", "seed=1"])
    assert base == "fusion_all__head-deep__seed-1"
    assert (
        name_from_overrides(
            "fusion_all",
            ["seed=1", "logger.mode=online", "output_dir=/x", "model.head=deep", "name=z"],
        )
        == base
    )
    # Two keys with the same last part keep their full paths.
    both = name_from_overrides("r", ["model.dropout=0.1", "segmentation.dropout=0.2"])
    assert both == "r__model.dropout-0.1__segmentation.dropout-0.2"
    # Shortened values get a hash of the exact ones, so close values never share a folder.
    a = name_from_overrides("r", ["model.lr=0.000316227766016"])
    b = name_from_overrides("r", ["model.lr=0.000316227766017"])
    assert a != b and a.startswith("r__lr-0.0003162-")


def _load_fit_tool():
    """The module behind ``tools/fit.py`` and ``osteo-fit`` (the wrapper only calls its main)."""
    import osteo.cli.fit

    return osteo.cli.fit


def test_fit_names_an_agent_run_as_the_local_runner_does(monkeypatch):
    fit = _load_fit_tool()
    seen = {}

    def fake_pipeline(cfg):
        seen["name"] = cfg.name
        return None

    monkeypatch.setattr(fit, "run_pipeline", fake_pipeline)
    monkeypatch.setattr(fit, "format_run_summary", lambda result: "")
    plans = plan_runs(load_sweep(FUSION_HEADS), FUSION_ALL)
    plan = plans[7]
    # What a W&B agent runs: the command with ${args_no_hyphens} expanded.
    argv = ["--config", str(FUSION_ALL), "--name-from-overrides"]
    argv += [f"{k}={v}" for k, v in plan.params.items()]
    assert fit.main(argv) == 0
    assert seen["name"] == plan.name


# --------------------------------------------------------------------------- aggregate


def test_aggregate_over_seeds_gives_mean_and_sd_per_head():
    table = pd.DataFrame(
        {
            "name": list("abcdef"),
            "status": ["ok"] * 5 + ["failed"],
            "model.head": ["deep"] * 3 + ["clinical"] * 3,
            "seed": ["0", "1", "2"] * 2,
            "internal_test_auc": [0.80, 0.84, 0.82, 0.70, 0.74, float("nan")],
            "external_test_auc": [0.90, 0.86, 0.88, 0.60, 0.66, float("nan")],
            "val_auc": [0.8] * 6,
        }
    )
    aggregate = aggregate_over_seeds(table, ["model.head", "seed"]).set_index("model.head")
    assert list(aggregate.index) == ["deep", "clinical"]
    assert aggregate.loc["deep", "n_runs"] == 3 and aggregate.loc["clinical", "n_runs"] == 2
    assert aggregate.loc["deep", "internal_test_auc_mean"] == pytest.approx(0.82)
    assert aggregate.loc["deep", "internal_test_auc_sd"] == pytest.approx(0.02)
    assert aggregate.loc["clinical", "external_test_auc_sd"] == pytest.approx(0.0424264, 1e-4)
    one_seed = aggregate_over_seeds(table.iloc[[0]], ["model.head", "seed"])
    assert math.isnan(one_seed.loc[0, "internal_test_auc_sd"])  # an SD needs two runs


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_local_sweep_runs_the_fusion_heads_grid_on_the_tiny_cohort(tmp_path, tiny_cohort):
    out = tmp_path / "sweep"
    result = sweep_tool(
        "local",
        str(FUSION_HEADS),
        "--parallel",
        "2",
        "--only",
        "model.head=clinical,deep_clinical",
        "--only",
        "seed=0,1",
        "--out",
        str(out),
        f"data.manifest={tiny_cohort}",
        f"cache_dir={tmp_path / 'cache'}",
        "segmentation.masks=manifest",
        "train.max_epochs=1",
        "train.crop_spacing_mm=2.3",
        "train.batch_size=8",
        "data.split.val_fraction=0.3",
        "train.n_bootstrap=50",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = [
        f"fusion_all__head-{h}__seed-{s}" for h in ("clinical", "deep_clinical") for s in (0, 1)
    ]
    for name in names:
        run = out / name
        assert (run / "predictions.csv").is_file(), name
        assert list((run / "wandb").glob("offline-run-*")), f"{name}: no offline W&B run"
        assert yaml.safe_load((run / "config.yaml").read_text())["logger"]["mode"] == "offline"
    summary = out / "summary"
    comparison = (summary / "comparison.md").read_text()
    assert all(name in comparison for name in names)
    aggregate = pd.read_csv(summary / "seed_aggregate.csv").set_index("model.head")
    assert list(aggregate.index) == ["clinical", "deep_clinical"]
    assert (aggregate["n_runs"] == 2).all()
    for split in ("internal_test", "external_test"):
        assert aggregate[f"{split}_auc_mean"].between(0, 1).all()
        assert aggregate[f"{split}_auc_sd"].notna().all()
    assert "±" in (summary / "seed_aggregate.md").read_text()
    assert "mean ± SD" in result.stdout
    runs = pd.read_csv(summary / "runs.csv")
    assert set(runs["status"]) == {"ok"} and "logger.mode" not in runs.columns
