"""Each file's content hash is read once per run (osteo/pipeline/file_hashes.py): the memo gives
``file_digest``'s own values, so cache keys do not change; an edited file is hashed again; the
store file carries hashes to the next run; the stages of one run read each radiograph once."""

from __future__ import annotations

import builtins
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from osteo import hashing
from osteo.hashing import file_digest
from osteo.pipeline.file_hashes import STORE_NAME, FileHashes

ROOT = Path(__file__).resolve().parents[1]
DAY_NS = 86_400 * 10**9


def _write(path: Path, data: bytes, age_ns: int = DAY_NS) -> Path:
    """Write ``data`` with an mtime ``age_ns`` in the past (not "racy" for the store)."""
    path.write_bytes(data)
    past = time.time_ns() - age_ns
    os.utime(path, ns=(past, past))
    return path


@pytest.fixture
def reads(monkeypatch):
    """Counts every file ``osteo.hashing`` opens, by resolved path: however a stage imported
    ``file_digest``, its reads go through this ``open``."""
    counts: Counter[str] = Counter()

    def counting_open(path, *args, **kwargs):
        counts[str(Path(path).resolve())] += 1
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(hashing, "open", counting_open, raising=False)
    return counts


def test_values_are_file_digests_and_sha256(tmp_path):
    rng = np.random.default_rng(0)
    sizes = (0, 1, (1 << 20) - 1, (1 << 20) + 7)  # around file_digest's read chunk
    files = [_write(tmp_path / f"f{n}", rng.bytes(n)) for n in sizes]
    hashes = FileHashes()
    for path in files:
        assert hashes.digest(path) == file_digest(path)
    # The old function's value is SHA-256 of the bytes (FIPS 180-2 test vector "abc").
    abc = _write(tmp_path / "abc", b"abc")
    assert hashes.digest(abc) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_cache_keys_do_not_change_with_the_memo(tmp_path):
    from osteo.radiomics.extractor import RadiomicsExtractor
    from osteo.radiomics.store import FeatureStore, StudyItem
    from osteo.segmentation.masks import MaskCache

    image = _write(tmp_path / "image.npy", b"image bytes" * 1000)
    mask = _write(tmp_path / "mask.png", b"mask bytes" * 100)
    hashes = FileHashes()
    cache = MaskCache(tmp_path / "masks")
    assert cache.key("ckpt", hashes.digest(image)) == cache.key("ckpt", file_digest(image))
    store = FeatureStore(
        tmp_path / "radiomics", RadiomicsExtractor(ROOT / "configs" / "radiomics" / "default.yaml")
    )
    boxes = {("right", "neck"): (1, 2, 3, 4)}
    plain = StudyItem("S1", image, boxes, mask_path=mask)  # the store hashes the files itself
    memo = StudyItem(
        "S1",
        image,
        boxes,
        mask_path=mask,
        image_digest=hashes.digest(image),
        mask_digest=hashes.digest(mask),
    )
    assert store.key_for(memo) == store.key_for(plain)


def test_a_file_is_read_once_until_it_changes(tmp_path, reads):
    path = _write(tmp_path / "image.dcm", b"first" * 1000)
    hashes = FileHashes()
    first = hashes.digest(path)
    assert hashes.digest(str(path)) == first  # another spelling of the same file
    assert hashes.digest(tmp_path / "." / "image.dcm") == first
    assert reads[str(path.resolve())] == 1 and hashes.hits == 2

    # Same size, other bytes, a new mtime: hashed again.
    _write(path, b"other" * 1000, age_ns=DAY_NS // 2)
    assert hashes.digest(path) == file_digest(path) != first
    assert reads[str(path.resolve())] == 3  # the memo's read and the check's

    # Only the mtime changes: read again (the bytes may have), same value.
    second = hashes.digest(path)
    later = time.time_ns() - DAY_NS // 4
    os.utime(path, ns=(later, later))
    assert hashes.digest(path) == second
    assert hashes.reads == 3


def test_prime_reads_each_file_once_and_leaves_errors_to_digest(tmp_path, reads):
    files = [_write(tmp_path / f"S{k}.dcm", bytes([k]) * 5000) for k in range(5)]
    missing = tmp_path / "gone.dcm"
    hashes = FileHashes(progress=False, threads=3)
    assert hashes.prime([*files, files[0], missing], desc="hashing images") == 5
    assert hashes.prime(files) == 0
    for path in files:
        assert hashes.digest(path) == file_digest(path)
        assert reads[str(path.resolve())] == 2  # the memo's read and this test's check
    with pytest.raises(FileNotFoundError, match="gone.dcm"):
        hashes.digest(missing)


def test_the_store_carries_hashes_to_the_next_run(tmp_path, reads):
    store = tmp_path / "cache" / STORE_NAME
    old = _write(tmp_path / "old.dcm", b"old" * 1000)
    fresh = _write(tmp_path / "fresh.dcm", b"fresh" * 1000, age_ns=0)  # could still change
    first = FileHashes(store)
    digests = {p: first.digest(p) for p in (old, fresh)}
    first.save()
    entries = json.loads(store.read_text())["entries"]
    assert list(entries) == [str(old.resolve())]

    second = FileHashes(store)
    assert second.digest(old) == digests[old] and second.reads == 0
    assert second.digest(fresh) == digests[fresh] and second.reads == 1

    # A file changed since the store was written is hashed again, and the store forgets it.
    _write(old, b"new" * 1000, age_ns=DAY_NS // 2)
    third = FileHashes(store)
    assert third.digest(old) == file_digest(old) != digests[old]
    assert third.reads == 1
    third.save()
    assert json.loads(store.read_text())["entries"][str(old.resolve())][4] == file_digest(old)


def test_an_unreadable_store_is_a_miss_with_a_warning(tmp_path, caplog):
    store = tmp_path / STORE_NAME
    store.write_text("{not json")
    path = _write(tmp_path / "a.dcm", b"a" * 100)
    with caplog.at_level(logging.WARNING, logger="osteo.pipeline.file_hashes"):
        hashes = FileHashes(store)
    assert "unreadable" in caplog.text and STORE_NAME in caplog.text
    assert hashes.digest(path) == file_digest(path)
    hashes.save()
    assert json.loads(store.read_text())["format"] == 1


def _tiny_checkpoint(path: Path) -> Path:
    from osteo.segmentation.module import FemurSegmentationModule

    torch.manual_seed(0)
    model = FemurSegmentationModule(channels=[4, 8, 16], spacing_mm=2.0, spatial_size=[64, 64])
    hparams = {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.hparams.items()}
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    return path


def test_the_stages_of_a_run_read_each_radiograph_and_mask_once(tmp_path, tiny_cohort, reads):
    """Data, segmentation (prediction with a given checkpoint), ROI and radiomics all key on the
    images and masks; across them each file is opened for hashing once."""
    from osteo.config import load_config
    from osteo.data.stage import run_data_stage
    from osteo.pipeline.context import RunContext
    from osteo.radiomics.stage import run_radiomics_stage
    from osteo.roi.stage import run_roi_stage
    from osteo.segmentation.stage import run_segmentation_stage

    checkpoint = _tiny_checkpoint(tmp_path / "unet.ckpt")
    cfg = load_config(
        None,
        [
            f"data.manifest={tiny_cohort}",
            f"output_dir={tmp_path / 'runs'}",
            f"cache_dir={tmp_path / 'cache'}",
            "data.split.val_fraction=0.3",
            "segmentation.masks=predict",
            f"segmentation.checkpoint={checkpoint}",
            f"radiomics.params={ROOT / 'configs' / 'radiomics' / 'default.yaml'}",
            "radiomics.workers=0",
            "roi.workers=1",
            "roi.overlays=none",
            "trainer.enable_progress_bar=false",
        ],
    )
    ctx = RunContext(cfg)
    try:
        data = run_data_stage(ctx)
        seg = run_segmentation_stage(ctx, data)
        rois = run_roi_stage(ctx, data, seg)
        # The radiomics stage keys every study; a few keep the extraction short.
        ids = sorted(seg.masks)[:3]
        run_radiomics_stage(ctx, data, seg, rois, ids, needed=True)
    finally:
        ctx.close()
    images = [str(Path(p).resolve()) for p in data.manifest["image_path"]]
    masks = [str(Path(p).resolve()) for p in seg.masks.values()]
    assert len(images) == 40 and masks
    assert all(reads[p] == 1 for p in images), {p: reads[p] for p in images if reads[p] != 1}
    assert all(reads[p] == 1 for p in masks), {p: reads[p] for p in masks if reads[p] != 1}
    assert ctx.hashes.hits >= len(images) + len(masks)  # stages did ask again

    stages = json.loads((ctx.run_dir / "stages.json").read_text())["stages"]
    peaks = [stages[name]["peak_rss_mb"] for name in ("data", "segmentation", "roi", "radiomics")]
    assert all(20 < p < 64_000 for p in peaks), peaks  # MB: a Python process with torch loaded
    assert peaks == sorted(peaks)  # a high-water mark never falls
    assert all(stages[name]["children_peak_rss_mb"] >= 0 for name in stages)


def test_a_store_that_cannot_be_written_costs_only_a_warning(tmp_path, caplog):
    blocker = _write(tmp_path / "not_a_folder", b"")
    hashes = FileHashes(blocker / STORE_NAME)
    path = _write(tmp_path / "a.dcm", b"a" * 100)
    value = hashes.digest(path)
    with caplog.at_level(logging.WARNING, logger="osteo.pipeline.file_hashes"):
        hashes.save()
    assert "hashes not kept" in caplog.text
    assert hashes.digest(path) == value and hashes.reads == 1


def test_runs_saving_at_once_keep_each_others_hashes(tmp_path):
    """Runs that share a cache folder merge their entries into one store under its lock."""
    from concurrent.futures import ThreadPoolExecutor

    store = tmp_path / "cache" / STORE_NAME
    groups = [
        [_write(tmp_path / f"r{r}_{k}.dcm", bytes([r, k]) * 500) for k in range(20)]
        for r in range(4)
    ]

    def run(files):
        hashes = FileHashes(store, progress=False)
        for path in files:
            hashes.digest(path)
            hashes.save()  # as after every stage: many interleaved merges

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, groups))
    entries = json.loads(store.read_text())["entries"]
    assert {str(p.resolve()) for files in groups for p in files} == set(entries)
    assert all(entries[str(p.resolve())][4] == file_digest(p) for p in groups[2])
