"""tools/predict.py and osteo.predict on the shared tiny run (tests/run_factory.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from run_factory import load_tool

from osteo.data.manifest import hash_identifier
from osteo.predict import (
    PredictionSettings,
    RunFolderError,
    StudyInput,
    collect_inputs,
    load_trained_run,
)
from osteo.predict.batch import build_predictor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    return load_tool()


@pytest.fixture(scope="module")
def manifest(tiny_run) -> pd.DataFrame:
    table = pd.read_csv(tiny_run.manifest, dtype=str)
    folder = tiny_run.manifest.parent
    table["image_path"] = [str(folder / p) for p in table["image_path"]]
    table["mask_path"] = [str(folder / p) for p in table["mask_path"]]
    return table


def write_manifest(path: Path, rows: pd.DataFrame, columns) -> Path:
    rows[list(columns)].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def predictor(tiny_run, tmp_path_factory):
    settings = PredictionSettings(overlays_dir=tmp_path_factory.mktemp("overlays"))
    return build_predictor(tiny_run.run_dir, masks_from_manifest=True, settings=settings)


def study_of(row) -> StudyInput:
    return StudyInput(
        study_id=row.study_id,
        image_path=Path(row.image_path),
        mask_path=Path(row.mask_path),
        clinical={"age": float(row.age), "sex": row.sex, "weight": float(row.weight)},
        origin="manifest",
    )


def test_predictions_match_the_pipeline_and_carry_explanations(tiny_run, manifest, predictor):
    expected = pd.read_csv(tiny_run.run_dir / "predictions.csv").head(3)
    # predictions.csv names studies by their keyed pseudonyms (osteo.privacy).
    public = manifest.assign(public=[hash_identifier(s, "study") for s in manifest["study_id"]])
    rows = public.set_index("public", drop=False).loc[expected["study_id"]]
    for row, probability in zip(rows.itertuples(), expected["probability"], strict=True):
        result = predictor.predict(study_of(row))
        assert result.ok, result.error
        # The same crops, texture and standardisation as training: the same probability.
        assert result.probability == pytest.approx(probability, abs=1e-5)
        assert result.positive == (result.probability >= predictor.run.threshold)
        assert result.tscore is not None and -10 < result.tscore < 10  # the auxiliary output
        assert set(result.rois.hips) == {"right", "left"}
        shares = result.explanation["gradcam_share"]
        assert sum(shares.values()) == pytest.approx(1.0)
        top = result.explanation["top_features"]
        assert len(top) == 10 and {f["group"] for f in top} <= {"clinical", "texture"}
        magnitudes = [abs(f["contribution"]) for f in top]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert result.overlay.is_file()
        assert result.overlay.stem == hash_identifier(row.study_id, "study")


def test_threshold_is_the_validated_one(tiny_run):
    run = load_trained_run(tiny_run.run_dir)
    metrics = json.loads((tiny_run.run_dir / "metrics.json").read_text())
    assert run.threshold == pytest.approx(metrics["val"]["threshold"])
    assert run.has_tscore and run.head == "deep_texture_clinical"


def test_command_line_writes_records_and_overlays_without_identifiers(
    tool, tiny_run, manifest, tmp_path, capsys
):
    rows = manifest.head(2)
    path = write_manifest(tmp_path / "new.csv", rows, ["study_id", "image_path", "mask_path"])
    out, overlays = tmp_path / "out" / "predictions.jsonl", tmp_path / "overlays"
    code = tool.main(
        [
            "--run",
            str(tiny_run.run_dir),
            str(path),
            "--masks-from-manifest",
            "--out",
            str(out),
            "--overlays",
            str(overlays),
            "--no-progress",
            "--top-features",
            "5",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["study"] for r in records] == [hash_identifier(s, "study") for s in rows["study_id"]]
    for record in records:
        assert record["status"] == "ok" and record["decision"] in (
            "osteoporosis",
            "no osteoporosis",
        )
        assert record["clinical"]["sources"] == {"age": "dicom", "sex": "dicom", "weight": "dicom"}
        assert len(record["explanation"]["top_features"]) == 5
        assert "tscore_pred" in record and record["quality"]["ok"] is True
    assert sorted(p.stem for p in overlays.glob("*.png")) == sorted(r["study"] for r in records)
    assert "predicted 2 of 2 studies" in captured.err
    text = out.read_text() + captured.out + captured.err
    for secret in [
        *rows["study_id"],
        *rows["patient_id"],
        *(Path(p).name for p in rows["image_path"]),
    ]:
        assert secret not in text


def test_show_identifiers_and_csv(tool, tiny_run, manifest, tmp_path, capsys):
    rows = manifest.head(1)
    path = write_manifest(tmp_path / "new.csv", rows, ["study_id", "image_path", "mask_path"])
    out = tmp_path / "out.csv"
    argv = ["--run", str(tiny_run.run_dir), str(path), "--masks-from-manifest", "--out", str(out)]
    assert tool.main([*argv, "--show-identifiers", "--no-progress", "--no-gradcam"]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["study"] == row["study_id"] == rows["study_id"].iloc[0]
    assert row["image_path"].endswith(Path(rows["image_path"].iloc[0]).name)
    assert float(row["probability"]) > 0 and row["right_neck"].count(" ") == 3
    assert row["gradcam_share_right"] == ""  # --no-gradcam
    capsys.readouterr()


def test_clinical_values_from_options_override_the_header(predictor, manifest):
    row = next(manifest.itertuples())
    study = StudyInput(row.study_id, Path(row.image_path), Path(row.mask_path))
    predictor.settings.clinical_options = {"age": 80.0}
    try:
        result = predictor.predict(study)
    finally:
        predictor.settings.clinical_options = {}
    assert result.ok, result.error
    assert result.clinical.sources == {"age": "option", "sex": "dicom", "weight": "dicom"}
    assert result.clinical.values["age"] == 80.0


def test_a_head_that_needs_a_missing_value_says_which(predictor, manifest, tmp_path):
    import SimpleITK as sitk

    from osteo.data.io import read_radiograph

    row = next(manifest.itertuples())
    png = tmp_path / "no_tags.png"  # PNG files carry no age, sex or weight
    image = sitk.GetImageFromArray(read_radiograph(row.image_path).pixels.astype(np.uint16))
    image.SetSpacing((1.0, 1.0))
    sitk.WriteImage(image, str(png))
    study = StudyInput("x", png, Path(row.mask_path), clinical={"sex": "F"})
    result = predictor.predict(study)
    assert not result.ok
    assert "needs age and weight" in result.error and "--age, --weight" in result.error


def test_folder_input_and_duplicate_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "hip.dcm").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    studies = collect_inputs([tmp_path / "a", tmp_path / "b", tmp_path / "missing.dcm"])
    assert [s.study_id for s in studies] == ["a/hip.dcm", "b/hip.dcm", "missing"]


def test_predicted_masks_from_a_segmentation_checkpoint(tiny_run, manifest, tmp_path):
    """The U-Net path: an untrained network finds no femur, and says so per study."""
    from osteo.segmentation.module import FemurSegmentationModule

    seg = FemurSegmentationModule(channels=[4, 8, 16], spacing_mm=5.0, spatial_size=[96, 96])
    checkpoint = tmp_path / "seg.ckpt"
    torch.save({"hyper_parameters": dict(seg.hparams), "state_dict": seg.state_dict()}, checkpoint)
    with pytest.raises(RunFolderError, match="--segmentation-checkpoint"):
        build_predictor(tiny_run.run_dir)  # trained on reference masks: no U-Net of its own
    predictor = build_predictor(
        tiny_run.run_dir, segmentation_checkpoint=checkpoint, cache_dir=tmp_path / "cache"
    )
    row = next(manifest.itertuples())
    result = predictor.predict(StudyInput(row.study_id, Path(row.image_path)))
    # An untrained U-Net's mask is no pair of femurs: the gate says why, with no probability.
    assert result.ok or (result.status == "not_assessable" and result.probability is None)
    assert result.ok or any("femur" in reason for reason in result.reasons), result.reasons
    assert list((tmp_path / "cache").glob("*/*.png")), "the predicted mask was not cached"


def test_unfinished_run_folder_names_what_is_missing(tiny_run, tmp_path):
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    for name in ("checkpoints/model.ckpt", "scalers.json", "metrics.json"):
        (folder / name).write_bytes((tiny_run.run_dir / name).read_bytes())
    with pytest.raises(RunFolderError, match="inference.json"):
        load_trained_run(folder)


def test_radiomics_parameters_come_from_the_run_when_the_file_moved(tiny_run, tmp_path):
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    for name in ("checkpoints/model.ckpt", "scalers.json", "metrics.json", "inference.json"):
        (folder / name).write_bytes((tiny_run.run_dir / name).read_bytes())
    card = json.loads((folder / "inference.json").read_text())
    card["radiomics"]["params_path"] = str(tmp_path / "moved.yaml")
    (folder / "inference.json").write_text(json.dumps(card))
    run = load_trained_run(folder)
    assert list(run.build_extractor().feature_names) == run.scalers["texture"].names
