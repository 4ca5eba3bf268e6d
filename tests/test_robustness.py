"""Bad input and faults: broken files, bad manifests, killed processes, unsafe files, privacy."""

from __future__ import annotations

import importlib.util
import io
import json
import multiprocessing
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from dicom_factory import CR_IMAGE_STORAGE, base_dataset, write_colour, write_multiframe
from run_factory import fit_env

from osteo.predict import PredictionSettings, RunFolderError, StudyInput, load_trained_run
from osteo.predict.batch import build_predictor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference(tiny_run):
    """The first study of the tiny cohort: (image path, mask path)."""
    row = pd.read_csv(tiny_run.manifest).iloc[0]
    folder = tiny_run.manifest.parent
    return folder / row["image_path"], folder / row["mask_path"]


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return build_predictor(tiny_run.run_dir, masks_from_manifest=True)


# --------------------------------------------------------------------------- bad files


def corrupt(path: Path, image: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(5000))


def truncated(path: Path, image: Path) -> None:
    data = image.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def empty(path: Path, image: Path) -> None:
    path.write_bytes(b"")


def colour_dicom(path: Path, image: Path) -> None:
    write_colour(path)


def colour_png(path: Path, image: Path) -> None:
    import SimpleITK as sitk

    rgb = np.zeros((200, 200, 3), dtype=np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(path))


def multiframe(path: Path, image: Path) -> None:
    write_multiframe(path)


def huge(path: Path, image: Path) -> None:
    # The header declares 30 000 x 30 000 pixels: refused before anything is decoded.
    ds = base_dataset(CR_IMAGE_STORAGE, np.zeros((4, 4)), 12, "MONOCHROME2")
    ds.Rows = ds.Columns = 30000
    ds.save_as(path, enforce_file_format=True)


BAD_FILES = {
    "corrupt.dcm": (corrupt, "not a readable DICOM file|has no pixel data"),
    "truncated.dcm": (truncated, "truncated or corrupt"),
    "empty.dcm": (empty, "file is empty"),
    "colour.dcm": (colour_dicom, "colour image"),
    "colour.png": (colour_png, "colour image"),
    "multiframe.dcm": (multiframe, "multi-frame image"),
    "huge.dcm": (huge, r"900 MP\), more than the limit of 50 MP"),
    "missing.dcm": (None, "file does not exist"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_is_a_clear_per_study_error(name, predictor, reference, tmp_path):
    make, message = BAD_FILES[name]
    path = tmp_path / name
    if make is not None:
        make(path, reference[0])
    result = predictor.predict(StudyInput("bad", path, reference[1]))
    assert result.status == "failed"
    assert re.search(message, result.error), result.error


def test_image_without_spacing_is_predicted_with_a_flag(predictor, reference, tmp_path):
    from PIL import Image

    from osteo.data.io import read_radiograph

    pixels = read_radiograph(reference[0]).pixels
    path = tmp_path / "no_spacing.png"  # Pillow writes no pHYs chunk: no spacing at all
    Image.fromarray(pixels.astype(np.uint16)).save(path)
    result = predictor.predict(
        StudyInput("s", path, reference[1], {"age": 70.0, "sex": "F", "weight": 60.0})
    )
    assert result.ok, result.error
    assert result.spacing is None
    assert any(f.startswith("spacing assumed") for f in result.flags)


@pytest.mark.parametrize(
    ("shape", "spacing", "flag"),
    [
        ((352, 432), (1.0, 1.0), None),
        ((352, 432), (3.0, 3.0), "unusual spacing: 3 x 3 mm"),
        ((352, 432), (1.0, 1.3), "non-square pixels"),
        ((100, 432), (1.0, 1.0), "unusual size: 100 x 432 pixels"),
        ((3000, 3000), (0.5, 0.5), "covers 1500 x 1500 mm"),
        ((352, 432), None, "spacing assumed: the file has no pixel spacing, 0.15 mm used"),
    ],
)
def test_quality_flags(shape, spacing, flag):
    from osteo.data.io import Radiograph
    from osteo.predict.image_checks import quality_flags

    flags = quality_flags(Radiograph(np.zeros(shape, np.float32), spacing), 0.15)
    assert (flags == []) if flag is None else any(flag in f for f in flags), flags


def load_tool():
    spec = importlib.util.spec_from_file_location("predict_tool", ROOT / "tools" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batch_goes_on_past_bad_files_and_lists_them(tiny_run, reference, tmp_path, capsys):
    image, mask = reference
    (tmp_path / "corrupt.dcm").write_bytes(b"\x00" * 300)
    (tmp_path / "empty.dcm").write_bytes(b"")
    manifest = tmp_path / "batch.csv"
    pd.DataFrame(
        {
            "study_id": ["GOOD1", "BAD1", "BAD2", "BAD3"],
            "image_path": [image, tmp_path / "corrupt.dcm", tmp_path / "empty.dcm", "nope.dcm"],
            "mask_path": [mask] * 4,
        }
    ).to_csv(manifest, index=False)
    out = tmp_path / "out.jsonl"
    argv = ["--run", str(tiny_run.run_dir), str(manifest), "--masks-from-manifest"]
    code = load_tool().main([*argv, "--out", str(out), "--no-progress", "--no-gradcam"])
    err = capsys.readouterr().err
    assert code == 1  # documented: some studies failed, the others were predicted
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "failed", "failed", "failed"]
    assert "predicted 1 of 4 studies" in err and "3 failed:" in err
    for index in (2, 3, 4):
        assert f"input #{index} " in err
    # Errors name the input by position and hash, never by file name or study id.
    for secret in ("BAD1", "BAD2", "corrupt.dcm", "empty.dcm", "nope", str(tmp_path)):
        assert secret not in err and secret not in out.read_text()


def test_manifest_with_bad_rows_lists_every_problem(tiny_run, reference, tmp_path, capsys):
    manifest = tmp_path / "bad.csv"
    pd.DataFrame(
        {
            "study_id": ["A1", "A2", "A2", "A4"],
            "image_path": [reference[0], reference[0], reference[0], ""],
            "age": ["70", "abc", "", "300"],
            "sex": ["F", "X", "M", ""],
        }
    ).to_csv(manifest, index=False)
    code = load_tool().main(["--run", str(tiny_run.run_dir), str(manifest), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    for expected in (
        "row 2 (line 3), column 'age': got 'abc'",
        "row 2 (line 3), column 'sex': got 'X'",
        "row 3 (line 4), column 'study_id': got 'A2'",
        "row 4 (line 5), column 'image_path'",
        "row 4 (line 5), column 'age': got '300'",
    ):
        assert expected in err, err


# --------------------------------------------------------------------------- killed processes


def test_killed_training_resumes_to_the_same_result(tiny_run):
    """SIGKILL after the first epoch's checkpoint; resume=true ends as the uninterrupted run."""
    command = tiny_run.fit_command("name=killed", "logger.mode=disabled", "roi.overlays=none")
    run = tiny_run.root / "runs" / "killed"
    last = run / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        command,
        cwd=tiny_run.root,
        env=fit_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while process.poll() is None and not last.is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"
    assert torch.load(last, weights_only=True)["epoch"] in (0, 1)  # mid-training
    assert not (run / "metrics.json").exists()

    resumed = subprocess.run(
        [*command, "resume=true"],
        cwd=tiny_run.root,
        env=fit_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    note = json.loads((run / "stages.json").read_text())["stages"]["classifier"]["note"]
    assert note.startswith("resumed from")

    # Bit for bit on CPU: the same weights after the last epoch, the same best model.
    uninterrupted = torch.load(tiny_run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    after_resume = torch.load(last, weights_only=True)
    assert uninterrupted["epoch"] == after_resume["epoch"]
    for name, tensor in uninterrupted["state_dict"].items():
        assert torch.equal(tensor, after_resume["state_dict"][name]), name
    expected = json.loads((tiny_run.run_dir / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    for split in ("val", "internal_test", "external_test"):
        for key in ("auc", "threshold", "sensitivity", "specificity"):
            assert got[split][key] == pytest.approx(expected[split][key], abs=1e-9), (split, key)


def _killed_midway(write) -> int:
    """Run ``write`` in a forked child that dies (SIGKILL) halfway through writing a file."""

    process = multiprocessing.get_context("fork").Process(target=write)
    process.start()
    process.join(timeout=60)
    return process.exitcode


def _half_then_die(fh_or_path, data: bytes) -> None:
    if isinstance(fh_or_path, str | Path):
        Path(fh_or_path).write_bytes(data[: len(data) // 2])
    else:
        fh_or_path.write(data[: len(data) // 2])
        fh_or_path.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def test_feature_store_write_killed_midway_leaves_no_valid_entry(tmp_path):
    from osteo.radiomics import FeatureStore, RadiomicsExtractor, StoreEntry
    from osteo.radiomics import store as store_module

    store = FeatureStore(
        tmp_path / "store", RadiomicsExtractor(ROOT / "configs/radiomics/default.yaml")
    )
    key = "ab" + "0" * 22
    entry = StoreEntry(np.zeros(store.n_features, dtype=np.float32))

    def write():
        real_savez = np.savez

        def savez_half(fh, **arrays):
            buffer = io.BytesIO()
            real_savez(buffer, **arrays)
            _half_then_die(fh, buffer.getvalue())

        store_module.np.savez = savez_half
        store.put(key, entry)

    assert _killed_midway(write) == -signal.SIGKILL
    assert list(store.root.glob("*/.*.tmp")), "the child did not get to write"
    assert not store.path_for(key).exists() and store.get(key) is None


def test_mask_cache_write_killed_midway_leaves_no_valid_entry(tmp_path):
    import SimpleITK as sitk

    from osteo.segmentation import predict as predict_module

    cache = predict_module.MaskCache(tmp_path / "masks")
    key = cache.key("checkpoint", "image")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:30, 10:20], mask[10:30, 40:50] = 1, 2

    def write():
        real_write = sitk.WriteImage

        def write_half(image, path):
            real_write(image, str(tmp_path / "whole.png"))
            _half_then_die(path, (tmp_path / "whole.png").read_bytes())

        predict_module.sitk.WriteImage = write_half
        cache.put(key, mask, (1.0, 1.0))

    assert _killed_midway(write) == -signal.SIGKILL
    assert list(cache.root.glob("*/.*.png")), "the child did not get to write"
    assert cache.get(key) is None


# --------------------------------------------------------------------------- unsafe files


class Payload:
    """Unpickling this creates ``marker``: what an attacker's code would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoints_and_caches_with_pickled_objects_are_refused(tiny_run, tmp_path):
    from osteo.data.datamodules import load_split_tensors
    from osteo.segmentation.module import FemurSegmentationModule
    from osteo.segmentation.predict import load_segmentation_model

    marker = tmp_path / "code_ran"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("inference.json", "scalers.json", "metrics.json"):
        (run / name).write_bytes((tiny_run.run_dir / name).read_bytes())
    state = torch.load(tiny_run.run_dir / "checkpoints" / "model.ckpt", weights_only=True)
    state["hyper_parameters"]["note"] = Payload(marker)
    torch.save(state, run / "checkpoints" / "model.ckpt")
    with pytest.raises(RunFolderError, match="refused to load"):
        load_trained_run(run)

    seg = FemurSegmentationModule(channels=[4, 8, 16])
    torch.save(
        {
            "hyper_parameters": dict(seg.hparams),
            "state_dict": seg.state_dict(),
            "x": Payload(marker),
        },
        tmp_path / "seg.ckpt",
    )
    with pytest.raises(Exception, match="Weights only load failed"):
        load_segmentation_model(tmp_path / "seg.ckpt")

    split = next((tiny_run.cache_dir / "datasets").glob("*/train.pt"))
    tensors = torch.load(split, weights_only=True)
    tensors["extra"] = Payload(marker)
    torch.save(tensors, tmp_path / "train.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        load_split_tensors(tmp_path / "train.pt")
    assert not marker.exists()


def test_radiomics_parameter_file_cannot_execute_code(tmp_path):
    from osteo.radiomics import RadiomicsExtractor

    marker = tmp_path / "code_ran"
    params = tmp_path / "evil.yaml"
    params.write_text(f"setting:\n  binCount: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(Exception, match="python/object/apply"):
        RadiomicsExtractor(params)
    assert not marker.exists()


# --------------------------------------------------------------------------- identifiers


def _files_containing(folder: Path, secrets: set[str]) -> dict[str, list[str]]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [s for s in secrets if s.encode() in data]
            if hits:
                found[str(path.relative_to(folder))] = hits
    return found


def test_run_folder_logs_and_wandb_carry_no_patient_identifier(tiny_run):
    table = pd.read_csv(tiny_run.manifest, dtype=str)
    patients = set(table["patient_id"])
    studies = set(table["study_id"])
    assert not _files_containing(tiny_run.run_dir, patients)
    wandb = tiny_run.run_dir / "wandb"
    assert list(wandb.glob("offline-run-*")), "the W&B offline run is missing"
    assert not _files_containing(wandb, patients | studies)
    console = tiny_run.stdout + tiny_run.stderr
    assert not [s for s in patients | studies if s in console]
    # The review overlays are named by a hash, never by the study.
    assert not [p for p in (tiny_run.run_dir / "overlays").rglob("*") if p.stem in studies]


def test_predict_outputs_carry_identifiers_only_when_asked(tiny_run, reference, tmp_path):
    from osteo.predict.writers import result_record

    predictor = build_predictor(
        tiny_run.run_dir,
        masks_from_manifest=True,
        settings=PredictionSettings(overlays_dir=tmp_path / "overlays", gradcam=False),
    )
    result = predictor.predict(StudyInput("S000001", reference[0], reference[1]))
    assert result.ok, result.error
    hidden = json.dumps(result_record(result, show_identifiers=False))
    assert "S000001" not in hidden and reference[0].name not in hidden
    assert "P000001" not in hidden
    assert not list((tmp_path / "overlays").glob("S000001*"))
    shown = json.dumps(result_record(result, show_identifiers=True))
    assert '"study_id": "S000001"' in shown and reference[0].name in shown
