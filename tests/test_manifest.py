"""Manifest validation (every problem at once) and patient-level splits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from osteo.data.manifest import (
    EXCLUDED_SPLIT,
    ManifestError,
    apply_splits,
    load_manifest,
    make_splits,
    read_splits,
    write_splits,
)

ROOT = Path(__file__).resolve().parents[1]
HEADER = "study_id,patient_id,image_path,study_date,site,age,sex,weight,tscore"


def make_manifest(folder: Path, rows: list[str], extra_header: str = "") -> Path:
    (folder / "img").mkdir(exist_ok=True)
    for name in ("a.png", "b.png", "c.png"):
        (folder / "img" / name).write_bytes(b"x")
    path = folder / "manifest.csv"
    path.write_text("\n".join([HEADER + extra_header, *rows]) + "\n")
    return path


def test_good_manifest_resolves_paths_and_labels(tmp_path):
    path = make_manifest(
        tmp_path,
        [
            "S1,P1,img/a.png,2015-01-02,A,70,F,60,-2.7",
            "S2,P2,img/b.png,2016-05-06,B,55,m,80,-1.0",
        ],
    )
    table = load_manifest(path)
    assert table["label"].tolist() == [1, 0]
    assert table["sex"].tolist() == ["F", "M"]
    assert Path(table["image_path"][0]).is_absolute() and Path(table["image_path"][0]).is_file()


def test_label_column_overrides_tscore_and_allows_missing_tscore(tmp_path):
    path = make_manifest(tmp_path, ["S1,P1,img/a.png,2015-01-02,A,70,F,60,,1"], ",label")
    assert load_manifest(path)["label"].tolist() == [1]


def test_every_problem_reported_at_once(tmp_path):
    path = make_manifest(
        tmp_path,
        [
            "S1,P1,img/a.png,2015-01-02,A,70,F,60,-2.7",
            "S1,P2,img/missing.png,2015-13-40,A,170,X,6,",
            "S3,P3,img/c.png,2015-01-02,A,17,F,300,abc",
        ],
    )
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    found = {(p.row, p.column) for p in err.value.problems}
    expected = {
        (2, "study_id"),
        (2, "image_path"),
        (2, "study_date"),
        (2, "age"),
        (2, "sex"),
        (2, "weight"),
        (2, "tscore"),
        (3, "age"),
        (3, "weight"),
        (3, "tscore"),
    }
    assert expected <= found
    text = str(err.value)
    assert "row 2 (line 3), column 'age': got '170'" in text
    assert "manifest.csv" in text


def test_missing_columns(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("study_id,patient_id\nS1,P1\n")
    with pytest.raises(ManifestError, match="column named 'image_path'"):
        load_manifest(path)


def test_tscore_optional_when_labels_not_needed(tmp_path):
    path = make_manifest(tmp_path, ["S1,P1,img/a.png,2015-01-02,A,70,F,60,"])
    assert load_manifest(path, require_label=False)["label"].isna().all()


def test_inconsistent_sex_per_patient(tmp_path):
    path = make_manifest(
        tmp_path,
        [
            "S1,P1,img/a.png,2015-01-02,A,70,F,60,-2.7",
            "S2,P1,img/b.png,2016-01-02,A,71,M,60,-2.7",
        ],
    )
    with pytest.raises(ManifestError, match="same sex"):
        load_manifest(path)


def random_cohort(n_patients=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        n_images = 1 + int(rng.random() < 0.2) + int(rng.random() < 0.05)
        site = "B" if rng.random() < 0.2 else "A"
        for k in range(n_images):
            year = int(rng.integers(2008, 2021))
            rows.append(
                {
                    "study_id": f"S{p}_{k}",
                    "patient_id": f"P{p}",
                    "site": site,
                    "study_date": pd.Timestamp(f"{year}-0{1 + int(rng.integers(0, 9))}-15"),
                    "label": int(rng.random() < 0.15),
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_patient_in_two_splits(seed):
    table = random_cohort(seed=seed)
    split = make_splits(table, "2008-01-01", "2009-06-30", ["A"], ["B"], 0.2, seed)
    kept = table.assign(split=split)[split != EXCLUDED_SPLIT]
    assert (kept.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(split) <= {"train", "val", "internal_test", "external_test", EXCLUDED_SPLIT}
    assert (split[table["site"] == "B"] == "external_test").all()
    # Development studies of test patients are marked, not silently dropped.
    assert len(split) == len(table)


def test_val_is_stratified_and_seeded():
    table = random_cohort(2000)
    a = make_splits(table, None, None, ["A"], ["B"], 0.2, seed=3)
    b = make_splits(table, None, None, ["A"], ["B"], 0.2, seed=3)
    c = make_splits(table, None, None, ["A"], ["B"], 0.2, seed=4)
    assert a.equals(b) and not a.equals(c)
    prevalence = table.assign(split=a).groupby("split")["label"].mean()
    assert abs(prevalence["train"] - prevalence["val"]) < 0.05


def test_split_table_round_trip(tmp_path):
    table = random_cohort()
    split = make_splits(table, "2008-01-01", "2009-06-30", ["A"], ["B"], 0.2, 0)
    path = write_splits(table, split, tmp_path / "splits.csv")
    saved = read_splits(path)
    assert "patient_id" not in saved.columns  # identifiers are hashed
    assert not saved["patient_hash"].isin(table["patient_id"]).any()
    assert apply_splits(table, saved).equals(split)


def test_given_split_that_leaks_is_refused():
    table = random_cohort(50)
    repeat = table["patient_id"].duplicated(keep=False)
    patient = table.loc[repeat, "patient_id"].iloc[0]
    rows = table.index[table["patient_id"] == patient]
    table["split"] = None
    table.loc[rows[0], "split"] = "train"
    table.loc[rows[1], "split"] = "val"
    with pytest.raises(ValueError, match="more than one split"):
        make_splits(table, None, None, ["A"], ["Z"], 0.2, 0)


def run_check(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_manifest.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_manifest_cli(tmp_path):
    good = make_manifest(
        tmp_path,
        [
            "S1,P1,img/a.png,2015-01-02,A,70,F,60,-2.7",
            "S2,P2,img/b.png,2008-05-06,A,55,M,80,-1.0",
            "S3,P3,img/c.png,2019-05-06,B,65,F,70,-3.0",
        ],
    )
    result = run_check(str(good))
    assert result.returncode == 0, result.stderr
    assert "3 studies of 3 patients" in result.stdout and "external_test" in result.stdout

    bad = tmp_path / "bad"
    bad.mkdir()
    bad_path = make_manifest(bad, ["S1,P1,img/a.png,2015-01-02,A,7,F,60,-2.7"])
    result = run_check(str(bad_path))
    assert result.returncode == 1
    assert "row 1 (line 2), column 'age'" in result.stderr


# --------------------------------------------------------------------------- hostile manifests

GOOD_ROW = "S1,P1,img/a.png,2015-01-02,A,70,F,60,-2.7"


def problems_of(path: Path, **kwargs) -> list:
    with pytest.raises(ManifestError) as err:
        load_manifest(path, **kwargs)
    return err.value.problems


def test_duplicate_header_refused(tmp_path):
    path = make_manifest(tmp_path, [GOOD_ROW + ",B"], ",site")
    found = problems_of(path)
    assert [(p.row, p.column) for p in found] == [(None, "site")]
    assert "each column name once" in found[0].expected


def test_extra_field_reported_as_such_not_shifted(tmp_path):
    path = make_manifest(
        tmp_path,
        [
            GOOD_ROW,
            "S2,P2,img/b.png,2015-01-02,A,70,F,60,-2.7,surplus",
            "S3,P3,img/c.png,2015-01-02,A,70,F,60",
        ],
    )
    found = problems_of(path)
    rows = [(p.row, p.column) for p in found]
    # Row 2: one problem (its field count), not seven misattributed columns; row 3 too few.
    assert rows == [(2, None), (3, None)]
    assert "10 fields" in str(found[0]) and "9 fields" in found[0].expected


def test_first_field_is_never_taken_as_an_index(tmp_path):
    # Every data row one field longer than the header: pandas would use study_id as an index.
    rows = [f"S{i},P{i},img/a.png,2015-01-02,A,70,F,60,-2.7,x" for i in range(3)]
    found = problems_of(make_manifest(tmp_path, rows))
    assert {p.row for p in found} == {1, 2, 3} and all(p.column is None for p in found)


def test_paths_outside_the_manifest_folder_refused(tmp_path):
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"x")
    data = tmp_path / "data"
    data.mkdir()
    path = make_manifest(
        data,
        [
            "S1,P1,../elsewhere.png,2015-01-02,A,70,F,60,-2.7",
            f"S2,P2,{outside},2015-01-02,A,70,F,60,-2.7",
            "S3,P3,img/../../../../../../etc/passwd,2015-01-02,A,70,F,60,-2.7",
        ],
    )
    found = problems_of(path, check_files=False)
    assert {(p.row, p.column) for p in found} == {
        (1, "image_path"),
        (2, "image_path"),
        (3, "image_path"),
    }
    assert all("allow_outside_paths" in p.expected for p in found)
    table = load_manifest(path, check_files=False, allow_outside_paths=True)
    assert len(table) == 3


def test_outside_mask_path_refused(tmp_path):
    path = make_manifest(tmp_path, [GOOD_ROW + ",/etc/hostname"], ",mask_path")
    found = problems_of(path, check_files=False)
    assert [(p.row, p.column) for p in found] == [(1, "mask_path")]


def test_huge_field_refused_and_message_truncated(tmp_path):
    path = make_manifest(tmp_path, [f"S1,P1,img/a.png,2015-01-02,{'A' * 5_000_000},70,F,60,-2.7"])
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert [(p.row, p.column) for p in err.value.problems] == [(1, "site")]
    assert len(str(err.value)) < 1000 and "5000000 characters" in str(err.value)


def test_file_size_cap(tmp_path, monkeypatch):
    import osteo.data.manifest as manifest_module

    path = make_manifest(tmp_path, [GOOD_ROW])
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_BYTES", 50)
    with pytest.raises(ManifestError, match="at most 50 bytes"):
        load_manifest(path)


@pytest.mark.parametrize("bad", ["S\x001", "S1\x07", "S\r1"])
def test_control_characters_refused(tmp_path, bad):
    path = tmp_path / "manifest.csv"
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"x")
    path.write_bytes((HEADER + "\n" + f'"{bad}",P1,img/a.png,2015-01-02,A,70,F,60,-2.7\n').encode())
    found = problems_of(path)
    assert [(p.row, p.column) for p in found] == [(1, "study_id")]
    assert "control characters" in found[0].expected


@pytest.mark.parametrize("lead", ["=", "+", "-", "@"])
@pytest.mark.parametrize("column", ["study_id", "patient_id"])
def test_formula_leading_ids_refused(tmp_path, lead, column):
    value = f"{lead}cmd|' /C calc'!A0"
    fields = {"study_id": "S1", "patient_id": "P1"}
    fields[column] = f'"{value}"'
    row = f"{fields['study_id']},{fields['patient_id']},img/a.png,2015-01-02,A,70,F,60,-2.7"
    found = problems_of(make_manifest(tmp_path, [row]))
    assert [(p.row, p.column, p.value) for p in found] == [(1, column, value)]


def test_check_manifest_cli_refuses_formula_id(tmp_path):
    path = make_manifest(tmp_path, ["\"=cmd|' /C calc'!A0\",P1,img/a.png,2015-01-02,A,70,F,60,-2"])
    result = run_check(str(path))
    assert result.returncode == 1
    assert "row 1 (line 2), column 'study_id'" in result.stderr


# --------------------------------------------------------------------------- property-based

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FIELD = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "S1", "P1", "img/a.png", "2015-01-02", "A", "70", "F", "-2.7", "=1"]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.lists(
        st.sampled_from(HEADER.split(",") + ["label", "split", "mask_path", "x"]),
        min_size=0,
        max_size=12,
    ),
    rows=st.lists(st.lists(_FIELD, max_size=12), max_size=6),
)
def test_arbitrary_rows_give_a_manifest_error_or_a_table(tmp_path, header, rows):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path / "manifest.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    try:
        table = load_manifest(path, check_files=False)
    except ManifestError as err:
        assert str(err) and err.problems
    else:
        assert len(table) >= 1


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_manifest_error_or_a_table(tmp_path, data):
    path = tmp_path / "manifest.csv"
    path.write_bytes(HEADER.encode() + b"\n" + data)
    try:
        load_manifest(path, check_files=False)
    except ManifestError as err:
        assert str(err) and err.problems
