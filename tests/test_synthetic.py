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

from osteo.config import cohort_folder_name
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
from osteo.data.synthetic.render import render_attenuation
from osteo.data.synthetic.texture import TrabecularField, pixel_filter_sigma_mm

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
    measured, truth = [], []
    for study in sample.to_dict("records"):
        rendered = render_study(study)
        pixels = rendered.stored.astype(float)
        # Each femur is drawn from its own hip's cue (label 1 = the right femur).
        measured.append([cortical_thickness_index(pixels, rendered.mask, k) for k in (1, 2)])
        truth.append([study["cti_right"], study["cti_left"]])
    measured, truth = np.array(measured), np.array(truth)
    assert np.corrcoef(measured.ravel(), truth.ravel())[0, 1] > 0.6
    assert _auc(sample["label"], -measured.min(axis=1)) > 0.65


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
    assert summary["generator_version"] == 2 and summary["spacing"] == "archive"
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
            # The spacing travels as a pHYs chunk: even a spacing of exactly 1.0 mm is known.
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


# --------------------------------------------------------------------------- pixel spacing


@pytest.fixture(scope="module")
def one_study() -> dict:
    table = sample_cohort_table("tiny", seed=5)
    return table[table["site"] == "A"].iloc[0].to_dict()


def _resample_like(fine: np.ndarray, fine_mm: float, coarse_mm: float, shape) -> np.ndarray:
    """A fine image blurred by the coarse pixel's filter and sampled at coarse pixel centres."""
    blurred = ndimage.gaussian_filter(fine, pixel_filter_sigma_mm(coarse_mm) / fine_mm)
    rows = (np.arange(shape[0]) + 0.5) * coarse_mm / fine_mm - 0.5
    cols = (np.arange(shape[1]) + 0.5) * coarse_mm / fine_mm - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(blurred, grid, order=1, mode="nearest")


def test_trabecular_field_is_one_structure_at_every_pixel_spacing():
    """The same seed at 0.15 and 0.9 mm: the coarse field is the fine one, pre-filtered."""
    u, v = np.meshgrid(np.arange(0, 40, 0.15), np.arange(0, 40, 0.15), indexing="ij")
    kwargs = dict(spacing_mm=0.8, thickness_mm=0.2, hurst=0.35, elongation=7.0)
    fine = TrabecularField(7, pixel_mm=0.15, **kwargs)(u, v)
    coarse = TrabecularField(7, pixel_mm=0.9, **kwargs)(u, v)
    # Filtering the fine field by what separates the two pixel filters gives the coarse one.
    extra = np.sqrt(pixel_filter_sigma_mm(0.9) ** 2 - pixel_filter_sigma_mm(0.15) ** 2) / 0.15
    match = ndimage.gaussian_filter(fine, extra, mode="wrap")
    assert np.corrcoef(match.ravel(), coarse.ravel())[0, 1] > 0.97
    # The trabecular band (~1.2 cycles/mm) does not survive 0.9 mm pixels: less variance.
    assert 0.6 < fine.std() < 1.2 and coarse.std() < 0.7 * fine.std()
    other = TrabecularField(8, pixel_mm=0.15, **kwargs)(u, v)
    assert abs(np.corrcoef(other.ravel(), fine.ravel())[0, 1]) < 0.2


def test_native_and_coarse_renders_agree(one_study):
    """A 0.15 mm and a 0.9 mm render of one study: the native one, blurred by the 0.9 mm
    pixel filter and sampled at the coarse pixel centres, is the coarse one up to what a
    point-sampled (not area-integrated) outline can differ by. Thresholds: outlines that move
    by a fraction of a coarse pixel keep the whole-image correlation above 0.998 (measured
    0.9999) and the femur masks' IoU above 0.97 (one boundary pixel of a ~2,000-pixel femur
    is ~2%; measured 0.996); the femoral-neck detail (the image minus its 3 mm low-pass,
    where the trabecular texture lives) correlates above 0.9 (measured 0.97-0.99; two
    different texture draws give ~0, a texture not filtered for the pixel aliases)."""
    native = render_attenuation(one_study, 0.15)
    coarse = render_attenuation(one_study, 0.9)
    assert native.attenuation.shape == (2333, 2867) and coarse.attenuation.shape == (389, 478)
    expected = _resample_like(native.attenuation, 0.15, 0.9, coarse.attenuation.shape)
    assert np.corrcoef(expected.ravel(), coarse.attenuation.ravel())[0, 1] > 0.998
    rows = ((np.arange(389) + 0.5) * 6).astype(int)
    cols = ((np.arange(478) + 0.5) * 6).astype(int)
    sampled_mask = native.mask[np.ix_(rows, cols)]
    for label in (1, 2):
        a, b = sampled_mask == label, coarse.mask == label
        assert (a & b).sum() / (a | b).sum() > 0.97
    for side in ("right", "left"):
        box = [int(coarse.geometry[f"{side}_neck_roi_{k}"]) for k in ("r0", "c0", "r1", "c1")]
        r0, c0, r1, c1 = box[0] - 8, box[1] - 8, box[2] + 8, box[3] + 8
        detail = [
            image - ndimage.gaussian_filter(image, 3.0 / 0.9)
            for image in (expected, coarse.attenuation)
        ]
        crop = [d[r0:r1, c0:c1].ravel() for d in detail]
        assert np.corrcoef(*crop)[0, 1] > 0.9, side


@pytest.mark.parametrize("spacing", [0.5, 1.0, 1.5])
def test_same_anatomy_at_every_spacing(one_study, spacing):
    """Reference geometry in mm agrees with the archive render's at any spacing."""
    reference = render_attenuation(one_study)
    other = render_attenuation(one_study, spacing)
    site = SITES["A"]
    assert other.attenuation.shape == (
        round(site.field_of_view_mm[0] / spacing),
        round(site.field_of_view_mm[1] / spacing),
    )
    for side in ("right", "left"):
        for key in ("r0", "c0", "r1", "c1"):
            name = f"{side}_neck_axis_{key}"
            pairs = ((reference.geometry, 0.7), (other.geometry, spacing))
            mm = [(g[name] + 0.5) * s for g, s in pairs]
            assert mm[0] == pytest.approx(mm[1], abs=1e-6)
        for roi in ("neck", "cortex"):
            centre = []
            for g, s in ((reference.geometry, 0.7), (other.geometry, spacing)):
                r = 0.5 * (g[f"{side}_{roi}_roi_r0"] + g[f"{side}_{roi}_roi_r1"]) * s
                c = 0.5 * (g[f"{side}_{roi}_roi_c0"] + g[f"{side}_{roi}_roi_c1"]) * s
                centre.append(np.array([r, c]))
            assert np.abs(centre[0] - centre[1]).max() <= max(0.7, spacing)


def test_render_refuses_a_spacing_out_of_range(one_study):
    with pytest.raises(ValueError, match="outside the supported 0.1-1.5 mm"):
        render_study(one_study, 2.0)


def test_spacing_reaches_the_dicom_the_summary_and_the_folder_name(tmp_path):
    generate_cohort(
        tmp_path, preset="tiny", n_studies=3, seed=2, workers=1, progress=False, spacing_mm=1.2
    )
    summary = json.loads((tmp_path / "cohort.json").read_text())
    assert summary["spacing"] == "1.2" and summary["sites"]["A"]["spacing_mm"] == 1.2
    import pydicom

    manifest = load_manifest(tmp_path / "manifest.csv")
    for row in manifest.to_dict("records"):
        ds = pydicom.dcmread(row["image_path"])
        site = SITES[row["site"]]
        assert [float(v) for v in ds.ImagerPixelSpacing] == [1.2, 1.2]
        assert ("PixelSpacing" in ds) == site.write_pixel_spacing
        assert (ds.Rows, ds.Columns) == site.at_spacing(1.2).shape
    names = {
        cohort_folder_name("default", 0, "dicom", None),
        cohort_folder_name("default", 0, "dicom", None, spacing_mm=1.2),
        cohort_folder_name("default", 0, "dicom", None, fullres=True),
    }
    assert names == {
        "default-seed0-dicom",
        "default-seed0-dicom-sp1.2mm",
        "default-seed0-dicom-fullres",
    }


def test_sites_declare_their_detector_in_mm():
    for site in SITES.values():
        assert 0.1 <= site.native_spacing_mm < 0.2 < site.archive_spacing_mm <= 1.5
        assert site.spacing_mm == site.archive_spacing_mm
        native = site.at_spacing(site.native_spacing_mm)
        assert min(native.shape) > 2000  # a real CR/DX radiograph's size
    assert SITES["A"].field_of_view_mm != SITES["B"].field_of_view_mm
    assert SITES["B"].photons_per_mm2 < SITES["A"].photons_per_mm2  # lower dose at B
