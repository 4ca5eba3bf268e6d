"""One rule for every cache: an unreadable entry is a miss, recomputed with a warning; shared
training folders and run folders are guarded by locks; failure reasons are the reader's own."""

from __future__ import annotations

import json
import multiprocessing
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from dicom_factory import write_cr
from femur_phantom import pelvis_label_map

from osteo.segmentation.masks import CacheEntryWarning, MaskCache, predict_masks
from osteo.segmentation.module import FemurSegmentationModule


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return FemurSegmentationModule(channels=[4, 8, 16], spacing_mm=2.0, spatial_size=[64, 64])


def test_truncated_mask_cache_entry_is_recomputed_with_a_warning(tmp_path, tiny_model):
    image = tmp_path / "S1.dcm"
    write_cr(image)
    cache = MaskCache(tmp_path / "masks")
    first = predict_masks(tiny_model, [("S1", str(image))], cache, "ckpt", progress=False)[0]
    assert first.mask_path is not None and not first.cached
    data = first.mask_path.read_bytes()
    first.mask_path.write_bytes(data[: len(data) // 2])  # a full disk, a killed copy
    with pytest.warns(CacheEntryWarning, match="unreadable"):
        again = predict_masks(tiny_model, [("S1", str(image))], cache, "ckpt", progress=False)[0]
    assert again.error is None and not again.cached
    assert sitk.ReadImage(str(again.mask_path)).GetSize()[:2] == (80, 64)  # whole again
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheEntryWarning)
        third = predict_masks(tiny_model, [("S1", str(image))], cache, "ckpt", progress=False)
    assert third[0].cached


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("truncate", "truncated or corrupt"),
        ("no_bits_stored", "Bits Stored"),
    ],
)
def test_failure_reason_is_the_readers_not_monai_wrapper(tmp_path, tiny_model, damage, reason):
    import pydicom

    image = tmp_path / "bad.dcm"
    write_cr(image)
    if damage == "truncate":
        data = image.read_bytes()
        image.write_bytes(data[: len(data) - 3000])
    else:
        ds = pydicom.dcmread(image)
        del ds.BitsStored
        ds.save_as(image)
    result = predict_masks(
        tiny_model, [("S1", str(image))], MaskCache(tmp_path / "m"), "ckpt", progress=False
    )[0]
    assert result.mask_path is None
    assert "applying transform" not in result.error and " at 0x" not in result.error
    assert reason in result.error and "bad.dcm" in result.error


def test_corrupt_roi_cache_entry_is_recomputed(tmp_path):
    from osteo.roi.geometry import RoiSettings
    from osteo.roi.stage import _place_one

    mask = tmp_path / "mask.png"
    image = sitk.GetImageFromArray(pelvis_label_map().astype(np.uint8))
    image.SetSpacing((0.5, 0.5))
    sitk.WriteImage(image, str(mask))
    entry = tmp_path / "roi" / "ab" / "entry.json"
    entry.parent.mkdir(parents=True)
    _, good = _place_one(("S1", str(mask), RoiSettings(), str(entry)))
    for damage in ('{"right": {"boxes": ', "[1, 2]", ""):
        entry.write_text(damage)
        with pytest.warns(UserWarning, match="ROI cache entry .* unreadable"):
            _, again = _place_one(("S1", str(mask), RoiSettings(), str(entry)))
        assert again == good
        assert json.loads(entry.read_text()) == json.loads(json.dumps(good))  # rewritten whole


def test_truncated_checkpoint_and_tensors_are_misses(tmp_path):
    from osteo.classification.stage import _usable_tensors
    from osteo.segmentation.stage import _usable_checkpoint

    model = FemurSegmentationModule(channels=[4, 8, 16])
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)
    tensors = tmp_path / "train.pt"
    torch.save({"study_id": ["S1"], "clinical": torch.zeros(1, 3)}, tensors)
    assert _usable_checkpoint(ckpt) and _usable_tensors(tensors)
    for path, check in ((ckpt, _usable_checkpoint), (tensors, _usable_tensors)):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.warns(UserWarning, match="unreadable"):
            assert not check(path)


# --------------------------------------------------------------------------- two processes


def _train_once(cache: str, log: str) -> None:
    """What the segmentation stage does with a shared key: lock, reuse or train, publish."""
    from osteo.files import atomic_path
    from osteo.segmentation.stage import _training_lock, _usable_checkpoint

    folder = Path(cache) / "segmentation"
    checkpoint = folder / "key" / "model.ckpt"
    with _training_lock(folder, "key"):
        if _usable_checkpoint(checkpoint):
            outcome = "reused"
        else:
            time.sleep(1.5)  # training: the other process must wait, not train alongside
            model = FemurSegmentationModule(channels=[4, 8, 16])
            with atomic_path(checkpoint) as tmp:
                torch.save({"state_dict": model.state_dict()}, tmp)
            outcome = "trained"
    with open(log, "a") as fh:
        fh.write(outcome + "\n")


def _hold_run_folder(output_dir: str, cache: str, ready, release) -> None:
    from osteo.config import load_config
    from osteo.pipeline.context import RunContext

    cfg = load_config(None, [f"output_dir={output_dir}", f"cache_dir={cache}", "name=same"])
    ctx = RunContext(cfg)
    ready.set()
    release.wait(60)
    ctx.close()


def test_two_processes_on_one_cache_and_one_name(tmp_path):
    from osteo.config import load_config
    from osteo.pipeline.context import RunContext, RunFolderBusyError

    context = multiprocessing.get_context("spawn")
    cache, log = tmp_path / "cache", tmp_path / "log.txt"
    # One cache, one segmentation key: one process trains, the other waits and reuses.
    workers = [context.Process(target=_train_once, args=(str(cache), str(log))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert sorted(log.read_text().split()) == ["reused", "trained"]
    assert not list((cache / "segmentation" / "key").glob(".*"))  # no temporary files left

    # One name: the second live run is refused, with a message that says why.
    ready, release = context.Event(), context.Event()
    holder = context.Process(
        target=_hold_run_folder, args=(str(tmp_path / "runs"), str(cache), ready, release)
    )
    holder.start()
    try:
        assert ready.wait(120)
        cfg = load_config(
            None, [f"output_dir={tmp_path / 'runs'}", f"cache_dir={cache}", "name=same"]
        )
        with pytest.raises(RunFolderBusyError, match="choose another name"):
            RunContext(cfg)
    finally:
        release.set()
        holder.join(60)
    RunContext(cfg).close()  # the holder ended: the folder is free
