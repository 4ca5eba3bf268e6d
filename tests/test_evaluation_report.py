"""Run metrics, report.md, the comparison table and the input checks of osteo.evaluation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from evaluation_factory import (
    SPLIT_SIZES,
    make_cohort,
    make_predictions,
    make_readers,
    make_runs,
    write_run,
)

from osteo.evaluation import (
    EvaluationInputError,
    binary_metrics_at_threshold,
    build_comparison_table,
    compare_runs,
    compute_run_metrics,
    delong_auc,
    evaluate_run,
    format_summary_table,
    holm_adjust,
    load_predictions,
    load_readers,
    load_run,
    run_name,
    select_threshold,
    summary_rows,
)
from osteo.evaluation.clustered import clustered_auc, clustered_paired_test
from osteo.evaluation.report import to_jsonable

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = {"n_bootstrap": 100}


@pytest.fixture(scope="module")
def predictions():
    return make_predictions(make_cohort(seed=1), separation=2.5, seed=1)


# ---------------------------------------------------------------- one run


def test_run_metrics_follow_the_contract_and_reuse_the_val_threshold(predictions):
    metrics = compute_run_metrics(predictions, **FAST)
    assert set(metrics) == {"val", "internal_test", "external_test", "settings"}
    val = predictions[predictions["split"] == "val"]
    threshold = select_threshold(val["label"], val["probability"])
    for split in ("val", "internal_test", "external_test"):
        m = metrics[split]
        part = predictions[predictions["split"] == split]
        for key in (
            "auc",
            "auc_ci",
            "sensitivity",
            "specificity",
            "threshold",
            "n",
            "n_positive",
            "ppv",
            "npv",
            "ece",
            "calibration_slope",
            "auc_ci_bootstrap",
        ):
            assert key in m, (split, key)
        assert m["threshold"] == threshold  # chosen on val, never re-chosen on a test set
        assert (m["n"], m["n_positive"]) == (len(part), int(part["label"].sum()))
        assert m["auc"] == delong_auc(part["label"], part["probability"]).auc
        assert len(m["auc_ci"]) == 2 and m["auc_ci"][0] < m["auc"] < m["auc_ci"][1]
        binary = binary_metrics_at_threshold(part["label"], part["probability"], threshold)
        assert (m["sensitivity"], m["specificity"]) == (binary.sensitivity, binary.specificity)
        assert m["bootstrap_unit"] == "patient"
        assert m["n_patients"] == part["patient_id_hash"].nunique()
        assert {g["group"] for g in m["subgroups"]["sex"]} == {"F", "M"}
        assert sum(g["n"] for g in m["subgroups"]["age_band"]) == len(part)
    assert metrics["settings"]["threshold_split"] == "val"


def test_target_sensitivity_threshold_and_no_bootstrap(predictions):
    metrics = compute_run_metrics(
        predictions, threshold_method="sensitivity", target_sensitivity=0.9, n_bootstrap=0
    )
    assert metrics["val"]["sensitivity"] >= 0.9
    assert "auc_ci_bootstrap" not in metrics["internal_test"]


def test_missing_val_is_a_clear_error_and_a_one_class_split_says_what_is_missing(predictions):
    no_val = predictions[predictions["split"] != "val"]
    with pytest.raises(EvaluationInputError, match="no 'val' rows"):
        compute_run_metrics(no_val, source="runs/x/predictions.csv")
    one_class = predictions[(predictions["split"] != "external_test") | (predictions["label"] == 0)]
    metrics = compute_run_metrics(one_class, source="runs/x/predictions.csv", **FAST)
    external = metrics["external_test"]
    assert external["auc"] is None and external["sensitivity"] is None
    assert any("one class" in why for why in external["missing"])
    assert metrics["internal_test"]["auc"] is not None and not metrics["internal_test"]["missing"]


def test_optional_columns_are_optional(predictions):
    bare = predictions[["study_id", "split", "probability", "label"]]
    metrics = compute_run_metrics(bare, **FAST)
    assert metrics["external_test"]["bootstrap_unit"] == "study"
    assert "subgroups" not in metrics["external_test"]
    missing_test = compute_run_metrics(bare[bare["split"] != "internal_test"], **FAST)
    assert "internal_test" not in missing_test
    assert missing_test["settings"]["missing_splits"] == ["internal_test"]


def test_evaluate_run_writes_metrics_plots_and_report(tmp_path, predictions):
    run = write_run(tmp_path / "my_run", predictions, "name: deep_clinical\n")
    metrics = evaluate_run(run, **FAST)
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == metrics
    assert on_disk["external_test"]["auc_ci"] == list(on_disk["external_test"]["auc_ci"])
    for name in ("roc_internal_test.png", "roc_external_test.png", "reliability.png"):
        assert (run / name).read_bytes().startswith(PNG_MAGIC)
    report = (run / "report.md").read_text()
    assert "# Evaluation of `deep_clinical`" in report
    for name in ("roc_internal_test.png", "roc_external_test.png", "reliability.png"):
        assert f"]({name})" in report
    assert f"{metrics['internal_test']['auc']:.3f}" in report
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_summary_table_is_one_line_per_split(predictions):
    metrics = to_jsonable(compute_run_metrics(predictions, **FAST))
    text = format_summary_table(metrics)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["split", "n", "positives"]
    assert [line.split()[0] for line in lines[2:]] == ["val", "internal_test", "external_test"]
    m = metrics["external_test"]
    assert f"{m['auc']:.3f} ({m['auc_ci'][0]:.3f}-{m['auc_ci'][1]:.3f})" in lines[4]
    assert [r["split"] for r in summary_rows(metrics)] == ["val", "internal_test", "external_test"]
    # The same formatter works on raw (tuple, NaN) and JSON (list, None) metrics.
    assert format_summary_table(compute_run_metrics(predictions, **FAST)) == text


def test_to_jsonable_replaces_nan_and_numpy_types():
    value = {"a": np.float32(0.5), "b": float("nan"), "c": (np.int64(2), np.inf), "d": np.bool_(1)}
    assert to_jsonable(value) == {"a": 0.5, "b": None, "c": [2, None], "d": True}


# ---------------------------------------------------------------- input files


def _write(tmp_path, text, name="predictions.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "body,match",
    [
        ("study_id,split,label\nS1,val,1\n", r"missing column\(s\) \['probability'\]"),
        ("study_id,split,probability,label\nS1,val,,1\n", "column 'probability' needs a finite"),
        ("study_id,split,probability,label\nS1,val,abc,1\n", "column 'probability' needs a finite"),
        ("study_id,split,probability,label\nS1,val,1.5,1\n", r"'probability' must be in \[0, 1\]"),
        ("study_id,split,probability,label\nS1,test,0.5,1\n", "unknown value.*'test'"),
        ("study_id,split,probability,label\nS1,val,0.5,2\n", "column 'label' must be 0 or 1"),
        (
            "study_id,split,probability,label\nS1,val,0.5,1\nS1,val,0.2,0\n",
            "study_id must be unique",
        ),
        ("study_id,split,probability,label\n,val,0.5,1\n", "column 'study_id' is empty at row"),
        (
            "study_id,split,probability,label,patient_id_hash\nS1,val,0.5,1,\n",
            "column 'patient_id_hash' is empty",
        ),
        ("study_id,split,probability,label\n", "no rows"),
    ],
)
def test_bad_predictions_name_the_file_and_column(tmp_path, body, match):
    path = _write(tmp_path, body)
    with pytest.raises(EvaluationInputError, match=match) as info:
        load_predictions(path)
    assert str(path) in str(info.value)


def test_bad_rows_are_numbered(tmp_path):
    path = _write(tmp_path, "study_id,split,probability,label\nS1,val,0.5,1\nS2,val,nan,0\n")
    with pytest.raises(EvaluationInputError, match=r"row\(s\) 2 "):
        load_predictions(path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(EvaluationInputError, match="predictions file not found"):
        load_predictions(tmp_path / "predictions.csv")
    with pytest.raises(EvaluationInputError, match="run folder not found"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(EvaluationInputError, match="readers file not found"):
        load_readers(tmp_path / "readers.csv")


def test_study_ids_stay_strings(tmp_path):
    path = _write(tmp_path, "study_id,split,probability,label\n007,val,0.5,1\n")
    assert load_predictions(path)["study_id"].tolist() == ["007"]


@pytest.mark.parametrize(
    "body,match",
    [
        ("study_id,reader\nS1,R1\n", r"missing column\(s\) \['score'\]"),
        ("study_id,reader,score\nS1,R1,high\n", "column 'score' needs a finite number"),
        (
            "study_id,reader,score\nS1,R1,4\nS1,R1,5\n",
            "reader 'R1' scores study 'S1' more than once",
        ),
        ("study_id,reader,score\nS1,,4\n", "column 'reader' is empty"),
        (
            "study_id,reader,score\nS1,R1,4\nS9,R1,2\n",
            r"1 study_id\(s\) not in the predictions.*S9",
        ),
    ],
)
def test_bad_readers_name_the_file_and_problem(tmp_path, body, match):
    predictions = pd.DataFrame({"study_id": ["S1", "S2"]})
    path = _write(tmp_path, body, "readers.csv")
    with pytest.raises(EvaluationInputError, match=match) as info:
        load_readers(path, predictions)
    assert str(path) in str(info.value)


def test_readers_of_studies_the_runs_excluded_are_left_out_and_counted(tmp_path):
    """A reader scored a study the pipeline excluded (not assessable): compared on the studies
    both scored, the count kept for the report; an id known to neither is still an error."""
    from osteo.evaluation.runs import load_excluded
    from osteo.privacy import pseudonym

    predictions = pd.DataFrame({"study_id": ["S1", "S2"]})
    run = tmp_path / "run"
    run.mkdir()
    hashed = pseudonym("S3", "study")  # runs write pseudonyms, readers' files the ids
    (run / "excluded.csv").write_text(f"study_id,split,reason\n{hashed},external_test,x\n")
    excluded = load_excluded(run)
    assert excluded == {hashed} and load_excluded(tmp_path) == set()
    path = _write(tmp_path, "study_id,reader,score\nS1,R1,4\nS2,R1,2\nS3,R1,5\n", "r.csv")
    table = load_readers(path, predictions, excluded)
    assert table["study_id"].tolist() == ["S1", "S2"]
    assert table.attrs["excluded_studies"] == 1
    with pytest.raises(EvaluationInputError, match="not in the predictions"):
        load_readers(path, predictions)  # without the run's exclusions S3 is unknown


def test_run_name_from_config_head_or_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.yaml").write_text("name: deep\nmodel:\n  head: x\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.yaml").write_text("model:\n  head: fusion_all\n")
    (tmp_path / "c").mkdir()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "config.yaml").write_text("name: [unclosed\n")
    assert [run_name(tmp_path / x) for x in "abc"] == ["deep", "fusion_all", "c"]
    with pytest.raises(EvaluationInputError, match="config.yaml: not valid YAML"):
        run_name(tmp_path / "d")


# ---------------------------------------------------------------- comparison


@pytest.fixture()
def runs_and_readers(tmp_path):
    cohort, run_dirs = make_runs(tmp_path / "runs")
    readers = make_readers(cohort, tmp_path / "readers.csv")
    return cohort, run_dirs, readers


def test_comparison_table_p_values_and_holm(runs_and_readers):
    cohort, run_dirs, readers_path = runs_and_readers
    runs = [load_run(d) for d in run_dirs]
    readers = load_readers(readers_path, runs[0].predictions)
    # The primary is pre-specified (here the middle model, not the best one).
    table = build_comparison_table(runs, readers, primary="fusion_deep", n_bootstrap=200).set_index(
        "name"
    )
    names = ["clinical", "fusion_deep", "deep_clinical"]
    assert table.index.tolist() == [*names, "R1", "R2"]
    assert table["kind"].tolist() == ["model"] * 3 + ["reader"] * 2
    for split in ("internal_test", "external_test"):
        parts = dict(zip(names, (r.split(split).set_index("study_id") for r in runs), strict=True))
        labels = parts["clinical"]["label"]
        patients = parts["clinical"]["patient_id_hash"].to_numpy()
        primary = parts["fusion_deep"].loc[labels.index, "probability"]
        assert table.loc["fusion_deep", f"{split}_compared_with"] == "reference"
        raw = {}
        for name in names:
            score = parts[name].loc[labels.index, "probability"]
            auc = clustered_auc(labels, score, patients)
            assert table.loc[name, f"{split}_auc"] == pytest.approx(auc.auc)
            assert table.loc[name, f"{split}_auc_ci_low"] == pytest.approx(auc.ci_low)
            if name != "fusion_deep":
                test = clustered_paired_test(labels, primary, score, patients)
                raw[name] = test.p_value
                assert table.loc[name, f"{split}_p_value"] == pytest.approx(test.p_value)
                low = table.loc[name, f"{split}_auc_difference_ci_low"]
                high = table.loc[name, f"{split}_auc_difference_ci_high"]
                assert low <= test.difference <= high
        if split == "external_test":
            scored = readers.set_index("study_id")
            for reader in ("R1", "R2"):
                mine = scored[scored["reader"] == reader]
                rows = labels.index.get_indexer(mine.index)
                test = clustered_paired_test(
                    labels.loc[mine.index], primary.loc[mine.index], mine["score"], patients[rows]
                )
                raw[reader] = test.p_value
                assert table.loc[reader, f"{split}_auc"] == pytest.approx(test.auc_b)
                assert table.loc[reader, f"{split}_p_value"] == pytest.approx(test.p_value)
        else:
            assert table.loc[["R1", "R2"], f"{split}_auc"].isna().all()
        # One Holm family per test set: exactly the pre-specified comparisons.
        adjusted = dict(zip(raw, holm_adjust(list(raw.values())), strict=True))
        for name, p_holm in adjusted.items():
            assert table.loc[name, f"{split}_p_value_holm"] == pytest.approx(p_holm)


def test_comparison_holm_family_is_exactly_the_prespecified_comparisons(runs_and_readers):
    _, run_dirs, readers_path = runs_and_readers
    runs = [load_run(d) for d in run_dirs]
    readers = load_readers(readers_path, runs[0].predictions)
    table = build_comparison_table(
        runs, readers, primary="deep_clinical", comparisons=["clinical", "R1"], n_bootstrap=0
    )
    table = table.set_index("name")
    raw = table.loc[["clinical", "R1"], "external_test_p_value"]
    np.testing.assert_allclose(
        table.loc[["clinical", "R1"], "external_test_p_value_holm"], holm_adjust(raw.to_numpy())
    )
    assert pd.isna(table.loc["fusion_deep", "external_test_p_value"])
    assert pd.isna(table.loc["R2", "external_test_p_value"])


def test_comparison_needs_a_prespecified_primary_among_the_runs(runs_and_readers):
    _, run_dirs, _ = runs_and_readers
    runs = [load_run(d) for d in run_dirs]
    with pytest.raises(EvaluationInputError, match="primary model 'fusion_all' is not among"):
        build_comparison_table(runs, primary="fusion_all")
    with pytest.raises(EvaluationInputError, match="name the primary model"):
        build_comparison_table(runs, primary=None)
    with pytest.raises(EvaluationInputError, match="comparison 'nope' is not among"):
        build_comparison_table(runs, primary="clinical", comparisons=["nope"])


def test_several_seeds_per_model_are_paired_by_seed_and_summarised(tmp_path):
    cohort = make_cohort(seed=6)
    dirs = []
    for seed in (0, 1, 2):
        dirs.append(
            write_run(
                tmp_path / f"all_s{seed}",
                make_predictions(cohort, 2.5, seed),
                f"model:\n  head: deep_texture_clinical\nseed: {seed}\n",
            )
        )
        dirs.append(
            write_run(
                tmp_path / f"clin_s{seed}",
                make_predictions(cohort, 1.0, 10 + seed),
                f"model:\n  head: clinical\nseed: {seed}\n",
            )
        )
    result = compare_runs(dirs, out_dir=tmp_path / "out", n_bootstrap=50)
    table = result.table.set_index("name")
    assert (
        table.loc["fusion_clinical (clin_s1)", "internal_test_compared_with"]
        == "fusion_all (all_s1)"
    )
    seeds = pd.read_csv(tmp_path / "out" / "seeds.csv").set_index("model")
    aucs = table[table["model"] == "fusion_all"]["external_test_auc"]
    assert seeds.loc["fusion_all", "n_runs"] == 3
    assert seeds.loc["fusion_all", "external_test_auc_mean"] == pytest.approx(aucs.mean())
    assert seeds.loc["fusion_all", "external_test_auc_sd"] == pytest.approx(aucs.std(ddof=1))
    assert "[seed 2]" in result.markdown and "+-" in result.markdown


def test_compare_runs_writes_table_and_plots(runs_and_readers, tmp_path):
    _, run_dirs, readers = runs_and_readers
    result = compare_runs(
        run_dirs, readers, tmp_path / "out", primary="deep_clinical", n_bootstrap=100
    )
    out = tmp_path / "out"
    csv = pd.read_csv(out / "comparison.csv")
    assert csv["name"].tolist() == ["clinical", "fusion_deep", "deep_clinical", "R1", "R2"]
    n_external = SPLIT_SIZES["external_test"]
    assert csv["external_test_n"].tolist() == [n_external] * 5
    assert csv.loc[3:, "internal_test_n"].isna().all()  # readers only scored external_test
    # Counts are written as integers ("140", not "140.0") even in columns with empty cells.
    assert f",{SPLIT_SIZES['internal_test']}.0," not in (out / "comparison.csv").read_text()
    markdown = (out / "comparison.md").read_text()
    assert "| Model | Internal test AUC (95% CI) | difference (CI) | P (Holm) |" in markdown
    assert "reference" in markdown and "Reader: R1" in markdown
    for name in ("roc_internal_test.png", "roc_external_test.png", "reliability.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
        assert f"]({name})" in markdown
    assert result.markdown in markdown


def test_compare_rejects_different_test_sets(tmp_path):
    cohort = make_cohort(seed=2)
    a = write_run(tmp_path / "a", make_predictions(cohort, 2.0, 0))
    shorter = make_predictions(cohort, 2.0, 1)
    b = write_run(
        tmp_path / "b", shorter.drop(shorter[shorter["split"] == "external_test"].index[:5])
    )
    with pytest.raises(
        EvaluationInputError, match="'external_test': runs 'a' and 'b' have different studies"
    ):
        compare_runs([a, b], out_dir=tmp_path / "out", primary="a")


def test_compare_rejects_readers_outside_one_test_split(tmp_path):
    cohort = make_cohort(seed=3)
    run = write_run(tmp_path / "a", make_predictions(cohort, 2.0, 0))
    readers = make_readers(cohort, tmp_path / "readers.csv", split="val")
    with pytest.raises(EvaluationInputError, match="readers must score the studies of one test"):
        compare_runs([run], readers, tmp_path / "out")


def test_compare_disambiguates_runs_with_the_same_name(tmp_path):
    cohort = make_cohort(seed=4)
    a = write_run(tmp_path / "a", make_predictions(cohort, 2.0, 0), "name: run\n")
    b = write_run(tmp_path / "b", make_predictions(cohort, 2.5, 1), "name: run\n")
    result = compare_runs([a, b], out_dir=tmp_path / "out", n_bootstrap=0)
    assert result.table["name"].tolist() == ["run (a)", "run (b)"]
    with pytest.raises(EvaluationInputError, match="given twice"):
        compare_runs([a, a], out_dir=tmp_path / "out", n_bootstrap=0)


def test_single_run_comparison_has_no_p_values(tmp_path):
    run = write_run(tmp_path / "solo", make_predictions(make_cohort(seed=5), 2.0, 0))
    table = compare_runs([run], out_dir=tmp_path / "out").table
    assert table.loc[0, "internal_test_compared_with"] == "reference"
    assert "internal_test_p_value" not in table.columns


def test_the_primary_comes_from_the_runs_config(tmp_path):
    cohort = make_cohort(seed=7)
    plan = "evaluation:\n  primary: fusion_clinical\n  comparisons: [fusion_deep]\n"
    dirs = [
        write_run(
            tmp_path / head, make_predictions(cohort, sep, i), f"model:\n  head: {head}\n{plan}"
        )
        for i, (head, sep) in enumerate([("clinical", 1.0), ("deep", 2.0), ("texture", 1.5)])
    ]
    table = compare_runs(dirs, out_dir=tmp_path / "out", n_bootstrap=0).table.set_index("name")
    assert table.loc["fusion_clinical", "internal_test_compared_with"] == "reference"
    assert table.loc["fusion_deep", "internal_test_compared_with"] == "fusion_clinical"
    assert pd.isna(table.loc["fusion_texture", "internal_test_p_value"])  # not pre-specified
    write_run(
        tmp_path / "texture",
        make_predictions(cohort, 1.5, 2),
        "model:\n  head: texture\nevaluation:\n  primary: fusion_texture\n",
    )
    with pytest.raises(EvaluationInputError, match="name different analyses"):
        compare_runs(dirs, out_dir=tmp_path / "out", n_bootstrap=0)


def test_metrics_say_which_method_gave_each_interval_and_report_has_the_new_sections(tmp_path):
    cohort = make_cohort(seed=8)
    predictions = make_predictions(cohort, 2.5, 0)
    predictions["site"] = np.where(predictions["split"] == "external_test", "B", "A")
    predictions.loc[predictions.index % 3 == 0, "site"] = "C"
    predictions["tscore"] = -1.5 - 1.5 * predictions["label"] + 0.3
    predictions["tscore_pred"] = predictions["tscore"] + 0.2
    predictions["probability_uncorrected"] = 1 / (1 + (1 / predictions["probability"] - 1) / 5)
    run = write_run(tmp_path / "run", predictions, "model:\n  head: deep\nseed: 3\n")
    metrics = evaluate_run(run, n_bootstrap=100, recalibration="platt")
    test = metrics["external_test"]
    assert test["auc_ci_method"].startswith("obuchowski")
    assert test["rates_ci_method"].startswith("patient bootstrap, percentile")
    assert test["sensitivity_ci_wilson"] is not None and test["sensitivity_ci"] is not None
    assert test["calibration_ci_method"] == "patient bootstrap, percentile"
    assert len(test["calibration_slope_ci"]) == 2
    assert "calibration_before_correction" in test
    assert {r["site"] for r in test["calibration_by_site"]} == {"B", "C"}
    assert test["triage"]["share_triaged"] is not None
    assert test["tscore_regression"]["mae"] == pytest.approx(0.2)
    assert metrics["settings"]["recalibration"]["method"] == "platt"
    assert metrics["settings"]["cluster_unit"] == "patient"
    report = (run / "report.md").read_text()
    for heading in (
        "## Calibration",
        "## Clinical utility",
        "## T-score regression",
        "## TRIPOD+AI checklist",
        "Items the authors must write themselves",
    ):
        assert heading in report
    for name in ("calibration_curve.png", "decision_curve.png", "bland_altman.png"):
        assert (run / name).read_bytes().startswith(PNG_MAGIC)
        assert f"]({name})" in report
    dca = pd.read_csv(run / "decision_curve.csv")
    assert set(dca["split"]) == {"val", "internal_test", "external_test"}


def test_a_one_class_split_still_gets_metrics_without_intervals(predictions):
    table = predictions.copy()
    only_negative = table["split"] == "external_test"
    table.loc[only_negative, "label"] = 0
    try:
        metrics = compute_run_metrics(table, n_bootstrap=50)
    except EvaluationInputError:
        pytest.skip("one-class splits are handled by the degenerate-split change")
    split = metrics["external_test"]
    assert split["auc_ci"] is None and "calibration_slope_ci" not in split


def test_a_sweep_without_the_configured_primary_uses_its_first_planned_model(tmp_path):
    from types import SimpleNamespace

    from osteo.sweeps.runner import _compare

    cohort = make_cohort(seed=9)
    dirs = [
        write_run(
            tmp_path / f"fusion_all__head-{head}__seed-0",
            make_predictions(cohort, sep, i),
            f"model:\n  head: {head}\nseed: 0\n",
        )
        for i, (head, sep) in enumerate([("clinical", 1.0), ("deep_clinical", 2.5)])
    ]
    outcomes = [SimpleNamespace(ok=True, run_dir=d) for d in dirs]
    result, error = _compare(outcomes, tmp_path / "summary", None)
    assert error is None
    table = result.table.set_index("name")
    assert table.loc["fusion_clinical", "internal_test_compared_with"] == "reference"
    assert table.loc["fusion_deep_clinical", "internal_test_compared_with"] == "fusion_clinical"
