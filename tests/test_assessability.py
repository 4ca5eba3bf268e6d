"""The "not assessable" gate (osteo/data/assessability.py): real non-pelvis images written by
real devices, a hip with one femur, the tiny synthetic cohort; and how prediction
(tools/predict.py) and the pipeline (excluded.csv, stages.json) report a rejected study.

Real images: ``tests/data/rtimage_elekta_portal.dcm`` (see tests/data/README.md) and the CT and
MR files pydicom ships (``pydicom.data``, a dependency), read from the installed package.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from run_factory import load_tool

from osteo.cli.predict import EXIT_NOT_ASSESSABLE
from osteo.data.assessability import (
    FEATURE_Z_LIMIT,
    NOT_ASSESSABLE,
    feature_reasons,
    header_reasons,
    image_reasons,
    mask_reasons,
)
from osteo.data.io import read_radiograph
from osteo.data.masks import read_label_map
from osteo.predict import PredictionSettings, StudyInput, result_record
from osteo.predict.batch import build_predictor

ROOT = Path(__file__).resolve().parents[1]
PORTAL = ROOT / "tests" / "data" / "rtimage_elekta_portal.dcm"


def read(path) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_radiograph(path)


def all_reasons(radiograph, label_map=None, spacing=None) -> list[str]:
    reasons = header_reasons(radiograph.tags) + image_reasons(radiograph.pixels, radiograph.spacing)
    if label_map is not None:
        reasons += mask_reasons(label_map, spacing)
    return reasons


def cohort_rows(manifest: Path) -> pd.DataFrame:
    table = pd.read_csv(manifest, dtype=str)
    folder = manifest.parent
    table["image_path"] = [str(folder / p) for p in table["image_path"]]
    table["mask_path"] = [str(folder / p) for p in table["mask_path"]]
    return table


def write_mask(path: Path, label_map: np.ndarray, spacing) -> Path:
    image = sitk.GetImageFromArray(label_map.astype(np.uint8))
    image.SetSpacing((float(spacing[1]), float(spacing[0])))
    sitk.WriteImage(image, str(path))
    return path


# ---------------------------------------------------------------------------- the checks


def test_every_normal_synthetic_hip_is_accepted(tiny_cohort):
    for row in cohort_rows(tiny_cohort).itertuples():
        label_map, spacing = read_label_map(row.mask_path)
        assert all_reasons(read(row.image_path), label_map, spacing) == [], row.study_id


def test_a_real_portal_radiograph_is_not_a_pelvis_film():
    # A real projection image from a real imager (Elekta iView), of a QA phantom.
    reasons = all_reasons(read(PORTAL))
    assert any("modality RTIMAGE" in r for r in reasons), reasons


@pytest.mark.parametrize(("name", "modality"), [("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")])
def test_real_ct_and_mr_slices_are_not_radiographs(name, modality):
    reasons = all_reasons(read(get_testdata_file(name)))
    assert any(f"modality {modality}" in r for r in reasons), reasons
    # Both are smaller than a pelvis: the field of view says so without the header too.
    assert any("field of view too small" in r for r in reasons), reasons


def test_body_part_and_lateral_view_from_the_header():
    tags = {"format": "dicom", "modality": "CR", "body_part": "CHEST", "view_position": "LL"}
    reasons = header_reasons(tags)
    assert any("body part is CHEST" in r for r in reasons)
    assert any("view position is LL" in r for r in reasons)
    assert header_reasons({**tags, "body_part": "PELVIS", "view_position": "AP"}) == []
    # No header to judge in a PNG; an unknown local term is not held against a study.
    assert header_reasons({"format": "png"}) == []
    assert header_reasons({**tags, "body_part": "BECKEN", "view_position": ""}) == []


def test_a_smooth_grey_image_has_no_contrast():
    rows, cols = np.mgrid[0:400, 0:400]
    grey = 1000.0 + 0.001 * (rows + cols)  # a grey card: a faint ramp
    grey[0, 0] = 2000.0  # one bright speck sets the range
    reasons = image_reasons(grey.astype(np.float32), (1.0, 1.0))
    assert any("no image contrast" in r for r in reasons), reasons


def test_a_hip_radiograph_with_one_femur_is_rejected(tiny_cohort):
    row = cohort_rows(tiny_cohort).iloc[0]
    label_map, spacing = read_label_map(row["mask_path"])
    one = np.where(label_map == 2, 0, label_map)  # the left femur gone (prosthesis, cut film)
    assert mask_reasons(one, spacing) == ["left femur not found"]
    # Most of the left femur cut off by the film's edge.
    rows, cols = np.nonzero(label_map == 2)
    cut = label_map.copy()
    cut[:, int(np.percentile(cols, 25)) :][cut[:, int(np.percentile(cols, 25)) :] == 2] = 0
    assert any("left femur is" in r and "other's area" in r for r in mask_reasons(cut, spacing))


def test_femurs_of_the_wrong_size_or_place_are_rejected(tiny_cohort):
    row = cohort_rows(tiny_cohort).iloc[0]
    label_map, (sr, sc) = read_label_map(row["mask_path"])
    # The same mask read as if the pixels were 10x larger: femurs of 100x the area, far apart.
    reasons = mask_reasons(label_map, (10 * sr, 10 * sc))
    assert any("right femur implausible" in r for r in reasons)
    assert any("mm apart" in r for r in reasons)
    # One femur moved far up: the pair is tilted.
    moved = np.where(label_map == 2, 0, label_map)
    rows, cols = np.nonzero(label_map == 2)
    shift = int(rows.min())
    moved[rows - shift, cols] = 2
    tilted = mask_reasons(moved, (sr, sc))
    assert any("degrees from the horizontal" in r for r in tilted), tilted


def test_standardised_inputs_far_from_training_are_rejected():
    names = [f"f{i}" for i in range(8)]
    assert feature_reasons(np.array([0.1, -2, 3, 15, 0, 1, -1, 0.5]), names) == []  # one outlier
    far = np.array([150, -2400, 300, 2, 0, 900, 0, 1], dtype=float)
    (reason,) = feature_reasons(far, names)
    assert "4 of 8 texture features" in reason and f"{FEATURE_Z_LIMIT:g} SD" in reason
    assert "f1 at 2400 SD" in reason


# ---------------------------------------------------------------------------- prediction


@pytest.fixture(scope="module")
def gated_predictor(tiny_run, tmp_path_factory):
    settings = PredictionSettings(overlays_dir=tmp_path_factory.mktemp("overlays"))
    return build_predictor(tiny_run.run_dir, masks_from_manifest=True, settings=settings)


def titles_of(monkeypatch) -> list[str]:
    """Capture the overlay titles the predictor draws."""
    import osteo.predict.overlay as overlay

    titles: list[str] = []
    original = overlay.save_prediction_overlay

    def capture(path, pixels, label_map, rois, crops, cams, cam_share, title, **kwargs):
        titles.append(title)
        return original(path, pixels, label_map, rois, crops, cams, cam_share, title, **kwargs)

    monkeypatch.setattr(overlay, "save_prediction_overlay", capture)
    return titles


def test_prediction_on_a_real_non_pelvis_radiograph_is_not_assessable(gated_predictor, monkeypatch):
    titles = titles_of(monkeypatch)
    result = gated_predictor.predict(StudyInput("portal", PORTAL, origin="file"))
    assert result.status == NOT_ASSESSABLE, result.error
    assert result.probability is None and result.positive is None and result.explanation is None
    assert any("modality RTIMAGE" in r for r in result.reasons)
    record = result_record(result)
    assert record["status"] == "not_assessable" and record["reasons"] == result.reasons
    assert not {"probability", "threshold", "decision", "tscore_pred"} & set(record)
    assert record["quality"]["ok"] is False
    assert result.overlay.is_file()
    assert titles[-1].startswith("NOT ASSESSABLE (no prediction): not a projection radiograph")


def test_prediction_on_a_hip_with_one_femur_is_not_assessable(
    gated_predictor, tiny_run, tmp_path, monkeypatch
):
    titles = titles_of(monkeypatch)
    row = cohort_rows(tiny_run.manifest).iloc[0]
    label_map, spacing = read_label_map(row["mask_path"])
    mask = write_mask(tmp_path / "one.nii.gz", np.where(label_map == 1, 0, label_map), spacing)
    study = StudyInput(row["study_id"], Path(row["image_path"]), mask_path=mask, origin="manifest")
    result = gated_predictor.predict(study)
    assert result.status == NOT_ASSESSABLE and result.reasons == ["right femur not found"]
    assert result.probability is None and result.rois is None
    assert "right femur not found" in titles[-1]
    # The same study with both femurs is predicted.
    whole = StudyInput(
        row["study_id"], Path(row["image_path"]), mask_path=Path(row["mask_path"]), origin="m"
    )
    assert gated_predictor.predict(whole).ok


def test_prediction_with_texture_far_from_training_is_not_assessable(tiny_run):
    # The run's own standardiser with SDs 10,000 times narrower: a normal study's texture now
    # lies where the real chest CR's did (hundreds to thousands of SD from the mean).
    predictor = build_predictor(tiny_run.run_dir, masks_from_manifest=True)
    scaler = predictor.run.scalers["texture"]
    scaler.std = scaler.std * 1e-4
    row = cohort_rows(tiny_run.manifest).iloc[0]
    study = StudyInput(
        row["study_id"], Path(row["image_path"]), mask_path=Path(row["mask_path"]), origin="m"
    )
    result = predictor.predict(study)
    assert result.status == NOT_ASSESSABLE and result.probability is None
    (reason,) = result.reasons
    assert reason.startswith("outside the training distribution:") and "texture features" in reason


def test_a_film_without_spacing_is_judged_at_the_assumed_spacing(
    gated_predictor, tiny_run, tmp_path
):
    from PIL import Image

    row = cohort_rows(tiny_run.manifest).iloc[0]
    png = tmp_path / "no_spacing.png"  # Pillow writes no pHYs chunk: no spacing at all
    Image.fromarray(read(row["image_path"]).pixels.astype(np.uint16)).save(png)
    label_map, _ = read_label_map(row["mask_path"])
    mask = write_mask(tmp_path / "mask.nii.gz", label_map, (0.15, 0.15))  # as the U-Net writes
    clinical = {"age": float(row["age"]), "sex": row["sex"], "weight": float(row["weight"])}
    result = gated_predictor.predict(StudyInput("s", png, mask, clinical, origin="m"))
    assert result.error is None, result.error
    assert result.status == NOT_ASSESSABLE
    assert any("right femur implausible" in r for r in result.reasons), result.reasons
    assert result.reasons[-1].startswith("the file has no pixel spacing: sizes in mm assume 0.15")


def test_command_line_exit_status_and_records(tiny_run, tmp_path, capsys):
    tool = load_tool()
    row = cohort_rows(tiny_run.manifest).iloc[0]
    manifest = tmp_path / "new.csv"
    pd.DataFrame(
        [
            {"study_id": "hip", "image_path": row["image_path"], "mask_path": row["mask_path"]},
            {"study_id": "portal", "image_path": str(PORTAL), "mask_path": row["mask_path"]},
        ]
    ).to_csv(manifest, index=False)
    out = tmp_path / "out.jsonl"
    args = ["--run", str(tiny_run.run_dir), "--masks-from-manifest", "--no-progress"]
    code = tool.main([*args, str(manifest), "--out", str(out), "--no-gradcam"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == EXIT_NOT_ASSESSABLE == 3  # documented in osteo/cli/predict.py
    assert [r["status"] for r in records] == ["ok", "not_assessable"]
    assert "decision" in records[0] and "decision" not in records[1]
    err = capsys.readouterr().err
    assert "1 not assessable (no prediction)" in err and "modality RTIMAGE" in err
    # CSV: the reasons column filled, the probability and decision empty.
    csv_out = tmp_path / "out.csv"
    assert tool.main([*args, str(manifest), "--out", str(csv_out), "--no-gradcam"]) == 3
    table = pd.read_csv(csv_out)
    portal = table.iloc[1]
    assert portal["status"] == "not_assessable" and "RTIMAGE" in portal["reasons"]
    assert pd.isna(portal["probability"]) and pd.isna(portal["decision"])


# ---------------------------------------------------------------------------- the pipeline


def test_pipeline_excludes_a_one_femur_study_with_the_reason(tiny_cohort, tmp_path):
    from osteo.classification.stage import select_studies
    from osteo.config import load_config
    from osteo.data.stage import run_data_stage
    from osteo.pipeline.context import RunContext
    from osteo.segmentation.stage import run_segmentation_stage

    cohort = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.parent, cohort)
    table = cohort_rows(cohort / "manifest.csv")
    victim = table.iloc[0]
    label_map, spacing = read_label_map(victim["mask_path"])
    write_mask(Path(victim["mask_path"]), np.where(label_map == 2, 0, label_map), spacing)
    cfg = load_config(
        ROOT / "configs" / "fusion_all.yaml",
        [
            f"data.manifest={cohort / 'manifest.csv'}",
            f"output_dir={tmp_path / 'runs'}",
            f"cache_dir={tmp_path / 'cache'}",
            "segmentation.masks=manifest",
            "trainer.enable_progress_bar=false",
        ],
    )
    ctx = RunContext(cfg)
    try:
        data = run_data_stage(ctx)
        seg = run_segmentation_stage(ctx, data)
        _, excluded = select_studies(data, seg)
        ctx.write_study_table(excluded, "excluded.csv")
        ctx.write_stages()
    finally:
        ctx.close()
    reasons = dict(zip(excluded["study_id"], excluded["reason"], strict=True))
    assert reasons[victim["study_id"]] == "not assessable: left femur not found"
    written = pd.read_csv(ctx.run_dir / "excluded.csv")
    assert "not assessable: left femur not found" in set(written["reason"])
    stages = json.loads((ctx.run_dir / "stages.json").read_text())["stages"]
    figures = stages["segmentation"]["figures"]
    assert figures["not_assessable"] == 1
