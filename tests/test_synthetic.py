"""The synthetic cohort: its statistics (on the latent table, large and fast) and its files.

Statistical checks draw the cohort table alone (no images), large enough that sampling noise
is far below the tolerances. Image checks use the tiny preset and a few dozen renders.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from osteo.data.io import MissingSpacingWarning, read_radiograph
from osteo.data.manifest import load_manifest
from osteo.data.synthetic import (
    BONE_CUES,
    COHORTS,
    MANIFEST_COLUMNS,
    PRESETS,
    SITES,
    generate_cohort,
    render_study,
    sample_cohort_table,
)

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "make_synthetic.py"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def big_table() -> pd.DataFrame:
    """60,000 studies in the paper preset's proportions: latent parameters only."""
    return sample_cohort_table("paper", seed=11, n_studies=60_000)


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    generate_cohort(out, preset="tiny", seed=3, workers=1, progress=False)
    return out


def _read_mask(path: Path) -> np.ndarray:
    """Masks are label maps, not radiographs: read them directly (no spacing warnings)."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _auc(labels, scores) -> float:
    return float(roc_auc_score(np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)))


# --------------------------------------------------------------------------- statistics


def test_prevalence_per_cohort_matches_the_reference(big_table):
    # The paper preset has the reference's exact counts.
    paper = sample_cohort_table("paper", seed=0)
    counts = paper.groupby("cohort")["label"].agg(["size", "sum"])
    assert counts.loc["development"].tolist() == [4924, 618]
    assert counts.loc["internal_test"].tolist() == [497, 45]
    assert counts.loc["external_test"].tolist() == [444, 111]
    assert paper.loc[paper["cohort"] == "development", "patient_id"].nunique() == 4308
    for name, spec in COHORTS.items():
        part = big_table[big_table["cohort"] == name]
        assert part["label"].mean() == pytest.approx(spec.prevalence, abs=0.015), name
        assert (part["site"] == spec.site).all()
        assert part["study_date"].between(spec.date_from, spec.date_to).all()
        assert (part["sex"] == "F").mean() == pytest.approx(0.843, abs=0.02)


def test_osteoporosis_by_age_band_in_women_matches_nhanes(big_table):
    """NHANES hip osteoporosis in women: ~7/12/26/35% at 50-59/60-69/70-79/80+ (site A DXA)."""
    women = big_table[(big_table["sex"] == "F")]
    bone_label = np.round(women["tscore_bone"], 1) <= -2.5
    bands = {(50, 60): 0.07, (60, 70): 0.12, (70, 80): 0.26, (80, 200): 0.35}
    for (lo, hi), expected in bands.items():
        in_band = women["age"].between(lo, hi, inclusive="left")
        assert bone_label[in_band].mean() == pytest.approx(expected, abs=0.05), (lo, hi)
    # Monotone in age, as bone loss is.
    rates = [bone_label[women["age"].between(lo, hi, inclusive="left")].mean() for lo, hi in bands]
    assert rates == sorted(rates)


def test_development_ages_and_weights_follow_the_issue(big_table):
    dev = big_table[big_table["cohort"] == "development"]
    assert dev["age"].mean() == pytest.approx(62.0, abs=1.5)
    assert dev["age"].std() == pytest.approx(13.0, abs=1.5)
    residual = dev["weight"] - (72.0 - 0.2 * (dev["age"] - 65.0))
    assert residual.mean() == pytest.approx(0.0, abs=1.0)
    assert residual.std() == pytest.approx(14.0, abs=1.5)


def test_clinical_only_logistic_regression_lands_near_the_ost_index(big_table):
    """Age, sex and weight alone: AUC near the published OST range (0.73-0.82), not above."""

    def features(frame):
        return np.column_stack([frame["age"], frame["sex"] == "F", frame["weight"]]).astype(float)

    dev = big_table[big_table["cohort"] == "development"]
    model = LogisticRegression(max_iter=1000).fit(features(dev), dev["label"])
    for name in ("internal_test", "external_test"):
        test = big_table[big_table["cohort"] == name]
        auc = _auc(test["label"], model.predict_proba(features(test))[:, 1])
        assert 0.70 <= auc <= 0.84, (name, auc)


def test_about_one_patient_in_seven_has_a_second_radiograph(big_table):
    for name in COHORTS:
        part = big_table[big_table["cohort"] == name]
        studies = part.groupby("patient_id").size()
        assert (studies > 1).mean() == pytest.approx(0.143, abs=0.01), name
        assert len(part) / len(studies) == pytest.approx(4924 / 4308, abs=0.01)
    # No patient in two cohorts; a follow-up is later and older, same sex.
    assert (big_table.groupby("patient_id")["cohort"].nunique() == 1).all()
    repeated = big_table[big_table.duplicated("patient_id", keep=False)].sort_values("study_date")
    first = repeated.groupby("patient_id").first()
    last = repeated.groupby("patient_id").last()
    assert (last["study_date"] > first["study_date"]).all()
    assert (last["age"] > first["age"]).all()
    assert (last["sex"] == first["sex"]).all()


def test_bone_cues_follow_the_tscore_with_published_strength(big_table):
    dev = big_table[big_table["cohort"] == "development"]
    expected = {
        "cti": 0.62,
        "trabecular_density": 0.70,
        "trabecular_pattern": 0.70,
        "hurst": 0.34,
        "calcar_mm": 0.45,
    }
    for cue in BONE_CUES:
        r = np.corrcoef(dev[cue.name], dev["tscore_bone"])[0, 1]
        assert r == pytest.approx(expected[cue.name], abs=0.06), cue.name
        # No single cue gives the answer: each is clearly below the combined ceiling.
        single = _auc(dev["label"], -dev[cue.name])
        assert single < _auc(dev["label"], dev["oracle_probability"]) - 0.03, cue.name


def test_oracle_is_the_ceiling(big_table):
    for name in COHORTS:
        part = big_table[big_table["cohort"] == name]
        oracle = _auc(part["label"], part["oracle_probability"])
        clinical = _auc(part["label"], part["clinical_probability"])
        image = _auc(part["label"], part["oracle_image_score"])
        assert 0.90 <= oracle <= 0.98, name
        assert oracle >= image - 0.005 and oracle > clinical + 0.1, name
        # The posterior is calibrated: its mean is the prevalence.
        assert part["oracle_probability"].mean() == pytest.approx(part["label"].mean(), abs=0.01)


def test_reader_aucs_are_near_the_reference_radiologists(big_table):
    external = big_table[big_table["cohort"] == "external_test"]
    auc1 = _auc(external["label"], external["reader1_score"])
    auc2 = _auc(external["label"], external["reader2_score"])
    assert 0.65 <= auc2 < auc1 <= 0.80
    for reader in ("reader1", "reader2"):
        scores = external[f"{reader}_score"]
        assert set(scores.unique()) == {1, 2, 3, 4, 5}
        assert scores.value_counts(normalize=True).max() < 0.45  # all five levels in use


def test_no_single_nuisance_parameter_separates_the_classes(big_table):
    """Acquisition and anatomy are independent of bone; within one sex (skeletal size depends
    on sex) and after removing weight (soft tissue grows with weight) they carry nothing."""
    women = big_table[(big_table["cohort"] == "development") & (big_table["sex"] == "F")]
    independent = [
        "rotation_deg",
        "shift_x_mm",
        "shift_y_mm",
        "exposure",
        "contrast",
        "blur_scale",
        "bowel_gas",
        "skeletal_scale",
        "pelvis_width",
        "pelvic_tilt",
        "neck_shaft_angle_right",
        "femoral_offset_left_mm",
        "head_radius_right_mm",
        "shaft_tilt_left_deg",
        "neck_foreshortening_right",
    ]
    for column in independent:
        assert abs(_auc(women["label"], women[column]) - 0.5) < 0.025, column
    for column in ("soft_tissue_mm", "body_half_width_mm"):
        slope, intercept = np.polyfit(women["weight"], women[column], 1)
        residual = women[column] - (slope * women["weight"] + intercept)
        assert abs(_auc(women["label"], residual) - 0.5) < 0.025, column


def test_table_is_deterministic_and_ids_are_synthetic():
    a = sample_cohort_table("tiny", seed=5)
    b = sample_cohort_table("tiny", seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(sample_cohort_table("tiny", seed=6))
    assert a["study_id"].str.fullmatch(r"S\d{6}").all()
    assert a["patient_id"].str.fullmatch(r"P\d{6}").all()
    assert a["study_id"].is_unique


def test_tiny_preset_has_both_classes_in_every_cohort():
    for seed in range(5):
        table = sample_cohort_table("tiny", seed=seed)
        assert len(table) == PRESETS["tiny"].total
        for name, minimum in PRESETS["tiny"].min_per_class.items():
            labels = table.loc[table["cohort"] == name, "label"]
            assert labels.sum() >= minimum and (1 - labels).sum() >= minimum


def test_n_studies_rescales_every_cohort():
    table = sample_cohort_table("default", seed=0, n_studies=150)
    counts = table["cohort"].value_counts()
    assert counts.sum() == 150
    assert counts["development"] == 96 and counts["internal_test"] == 34


# --------------------------------------------------------------------------- images


def cortical_thickness_index(pixels: np.ndarray, mask: np.ndarray, label: int) -> float:
    """CTI measured from the image alone: on rows across the lowest quarter of the femur
    mask (the diaphysis), the two cortical peaks sit at the canal walls, so
    CTI = 1 - (peak distance) / (mask width)."""
    rows = np.flatnonzero((mask == label).any(axis=1))
    top, bottom = rows.min(), rows.max()
    values = []
    for r in range(bottom - (bottom - top) // 4, bottom - 2):
        cols = np.flatnonzero(mask[r] == label)
        if len(cols) < 12:
            continue
        profile = ndimage.uniform_filter1d(pixels[r, cols.min() : cols.max() + 1].astype(float), 3)
        mid = len(profile) // 2
        left, right = int(np.argmax(profile[:mid])), mid + int(np.argmax(profile[mid:]))
        values.append(1.0 - (right - left) / len(profile))
    return float(np.median(values))


def test_cortical_thickness_measured_from_the_image_separates_the_classes():
    table = sample_cohort_table("default", seed=21)
    dev = table[table["cohort"] == "development"]
    sample = pd.concat([dev[dev["label"] == 1].head(40), dev[dev["label"] == 0].head(40)])
    measured = []
    for study in sample.to_dict("records"):
        rendered = render_study(study)
        pixels = rendered.stored.astype(float)
        measured.append(
            np.mean([cortical_thickness_index(pixels, rendered.mask, k) for k in (1, 2)])
        )
    measured = np.array(measured)
    assert np.corrcoef(measured, sample["cti"])[0, 1] > 0.6
    assert _auc(sample["label"], -measured) > 0.65


def test_cohort_folder_has_the_documented_files(tiny_cohort):
    manifest = pd.read_csv(tiny_cohort / "manifest.csv", dtype=str)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == PRESETS["tiny"].total
    assert manifest["image_path"].str.fullmatch(r"images/S\d{6}\.dcm").all()
    assert manifest["mask_path"].str.fullmatch(r"masks/S\d{6}\.png").all()
    assert manifest["study_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert set(manifest["sex"]) <= {"F", "M"} and set(manifest["site"]) == {"A", "B"}
    loaded = load_manifest(tiny_cohort / "manifest.csv")  # the project's own validator
    assert (loaded["label"] == (loaded["tscore"] <= -2.5)).all()

    readers = pd.read_csv(tiny_cohort / "readers.csv")
    external = manifest.loc[manifest["site"] == "B", "study_id"]
    assert sorted(readers["study_id"].unique()) == sorted(external)
    assert set(readers["reader"]) == {"reader1", "reader2"} and readers["score"].between(1, 5).all()

    latent = pd.read_csv(tiny_cohort / "latent.csv")
    assert list(latent["study_id"]) == list(manifest["study_id"])
    for side in ("right", "left"):
        for roi in ("neck", "cortex"):
            box = latent[[f"{side}_{roi}_roi_{k}" for k in ("r0", "c0", "r1", "c1")]].to_numpy()
            assert (box[:, 2] > box[:, 0]).all() and (box[:, 3] > box[:, 1]).all()

    summary = json.loads((tiny_cohort / "cohort.json").read_text())
    assert summary["preset"] == "tiny" and summary["seed"] == 3
    assert set(summary["oracle_auc"]) == set(COHORTS)
    for name, entry in summary["cohorts"].items():
        part = manifest[manifest["study_id"].isin(latent.loc[latent["cohort"] == name, "study_id"])]
        assert entry["studies"] == len(part)
        assert entry["positives"] == int(part["label"].astype(int).sum()) >= 2


def test_dicoms_read_back_with_bone_bright_and_realistic_tags(tiny_cohort):
    manifest = load_manifest(tiny_cohort / "manifest.csv")
    for site in ("A", "B"):
        row = manifest[manifest["site"] == site].iloc[0]
        image = read_radiograph(row["image_path"])
        acquisition = SITES[site]
        assert image.pixels.shape == acquisition.shape
        assert image.spacing == pytest.approx((acquisition.spacing_mm,) * 2)
        assert image.tags["modality"] == acquisition.modality
        assert image.tags["photometric_interpretation"] == acquisition.photometric
        assert image.tags["bits_stored"] == acquisition.bits_stored
        assert image.tags["patient_sex"] == row["sex"]
        assert image.tags["patient_age"] == pytest.approx(row["age"])
        assert image.tags["patient_weight"] == pytest.approx(row["weight"], abs=0.05)
        assert image.tags["view_position"] == "AP" and image.tags["body_part"] == "PELVIS"
        mask = _read_mask(row["mask_path"])
        bone = image.pixels[mask > 0].mean()
        tissue = image.pixels[(mask == 0) & (image.pixels > np.percentile(image.pixels, 20))].mean()
        assert bone > tissue  # bone is bright after MONOCHROME1 inversion too

    import pydicom

    ds = pydicom.dcmread(manifest["image_path"].iloc[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1" and ds.Modality == "CR"
    assert ds.PatientAge.endswith("Y") and len(ds.PatientAge) == 4
    assert ds.PatientName == ds.PatientID == manifest["patient_id"].iloc[0]
    assert "PixelSpacing" in ds and "ImagerPixelSpacing" in ds
    assert {"WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"} <= set(ds.dir())


def test_masks_cover_both_femurs(tiny_cohort):
    latent = pd.read_csv(tiny_cohort / "latent.csv")
    for study in latent.to_dict("records"):
        mask = _read_mask(tiny_cohort / "masks" / f"{study['study_id']}.png")
        assert set(np.unique(mask).astype(int)) == {0, 1, 2}
        spacing = SITES[study["site"]].spacing_mm
        stored = sitk.ReadImage(
            str(tiny_cohort / "masks" / f"{study['study_id']}.png")
        ).GetSpacing()
        assert stored == pytest.approx((spacing, spacing), rel=1e-3)  # PNG keeps it to 0.1%
        cols = {k: np.flatnonzero(mask == k) % mask.shape[1] for k in (1, 2)}
        assert cols[1].mean() < mask.shape[1] / 2 < cols[2].mean()  # right femur on image left
        for label, side in ((1, "right"), (2, "left")):
            area_cm2 = (mask == label).sum() * spacing**2 / 100.0
            assert 40.0 < area_cm2 < 160.0, (study["study_id"], side, area_cm2)
            head = (round(study[f"{side}_neck_axis_r0"]), round(study[f"{side}_neck_axis_c0"]))
            assert mask[head] == label  # the head centre lies in its own femur
            for roi in ("neck", "cortex"):
                r0, c0, r1, c1 = (
                    int(study[f"{side}_{roi}_roi_{k}"]) for k in ("r0", "c0", "r1", "c1")
                )
                inside = (mask[r0:r1, c0:c1] == label).mean()
                assert inside > (0.9 if roi == "neck" else 0.3), (study["study_id"], side, roi)


def test_images_vary(tiny_cohort):
    latent = pd.read_csv(tiny_cohort / "latent.csv")
    site_a = latent[latent["site"] == "A"]["study_id"].head(8)
    images = [read_radiograph(tiny_cohort / "images" / f"{s}.dcm").pixels for s in site_a]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            r = np.corrcoef(images[i].ravel(), images[j].ravel())[0, 1]
            assert r < 0.98, (i, j, r)
    means = [float(image.mean()) for image in images]
    assert np.std(means) > 0.5 * np.std(images[0]) / 10


def test_same_seed_same_files_whatever_the_workers_and_cli_smoke(tiny_cohort, tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "--out",
            str(out),
            "--preset",
            "tiny",
            "--seed",
            "3",
            "--workers",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "40 studies" in result.stdout and "external_test" in result.stdout
    for name in ("manifest.csv", "latent.csv", "readers.csv", "cohort.json"):
        assert (out / name).read_bytes() == (tiny_cohort / name).read_bytes(), name
    for study_id in ("S000001", "S000025", "S000040"):
        for folder, suffix in (("images", ".dcm"), ("masks", ".png")):
            a = (out / folder / f"{study_id}{suffix}").read_bytes()
            assert a == (tiny_cohort / folder / f"{study_id}{suffix}").read_bytes()


def test_png_format_reads_back(tmp_path):
    generate_cohort(
        tmp_path, preset="tiny", n_studies=3, seed=1, image_format="png", workers=1, progress=False
    )
    manifest = load_manifest(tmp_path / "manifest.csv")
    assert manifest["image_path"].str.endswith(".png").all()
    for row in manifest.to_dict("records"):
        with warnings.catch_warnings():
            # The spacing travels as a pHYs chunk: even site A's 1.0 mm is known.
            warnings.simplefilter("error", MissingSpacingWarning)
            image = read_radiograph(row["image_path"])
        spacing = SITES[row["site"]].spacing_mm
        assert image.spacing == pytest.approx((spacing, spacing), rel=1e-3)
        mask = _read_mask(row["mask_path"])
        assert image.pixels.shape == mask.shape == SITES[row["site"]].shape
        assert image.pixels[mask > 0].mean() > image.pixels.mean()  # bone bright at both sites


def test_cli_rejects_bad_arguments(tmp_path):
    result = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(tmp_path), "--preset", "huge"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr
