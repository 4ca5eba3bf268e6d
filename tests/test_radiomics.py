"""Radiomics extractor, feature store and feature tables (fast: a few small synthetic images)."""

from __future__ import annotations

import math
import multiprocessing
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import yaml
from radiomics import featureextractor
from radiomics_factory import (
    BOXES,
    crash_between_write_and_rename,
    fill_store,
    textured_radiograph,
    write_cohort,
)

from osteo.radiomics import (
    DEFAULT_PARAMS_PATH,
    ROI_SLOTS,
    FeatureStore,
    FeatureTable,
    MissingEntriesError,
    RadiomicsExtractor,
    RoiExtractionError,
    RoiFailure,
    StudyItem,
    extract_many,
    load_feature_table,
    load_many,
    save_feature_table,
    save_split_tables,
)


@pytest.fixture(scope="module")
def extractor() -> RadiomicsExtractor:
    return RadiomicsExtractor(DEFAULT_PARAMS_PATH)


def _params_variant(tmp_path, name: str, **setting) -> str:
    params = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text())
    params["setting"].update(setting)
    params["setting"] = {k: v for k, v in params["setting"].items() if v is not None}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params))
    return str(path)


# ---------------------------------------------------------------------------- extractor


def test_default_yields_660_named_features(extractor):
    names = extractor.feature_names
    assert len(extractor.roi_feature_names) == 165
    assert len(names) == 660 and len(set(names)) == 660
    for slot_index, (side, roi) in enumerate(ROI_SLOTS):
        block = names[slot_index * 165 : (slot_index + 1) * 165]
        assert all(name.startswith(f"{side}.{roi}.") for name in block)
    assert not any("diagnostics" in name for name in names)
    image_types = {name.split(".", 2)[2].split("_")[0] for name in names}
    # True 2D images: LoG is computed (a one-slice 3D volume would silently lose it).
    assert image_types == {
        "original",
        "log-sigma-1-0-mm-3D",
        "log-sigma-1-5-mm-3D",
        "log-sigma-2-0-mm-3D",
        "log-sigma-3-0-mm-3D",
    }
    assert "right.neck.original_glcm_Correlation" in names
    assert "left.cortex.log-sigma-2-0-mm-3D_firstorder_Median" in names


def test_roi_features_identical_to_pyradiomics_on_the_same_roi(tmp_path):
    # Without resampling (the image's own spacing; resampling: test_radiomics_spacing.py).
    params = _params_variant(tmp_path, "native.yaml", resampledPixelSpacing=None)
    extractor = RadiomicsExtractor(params)
    pixels = textured_radiograph(7)
    row0, col0, row1, col1 = BOXES[("left", "neck")]
    spacing = (0.8, 0.9)  # (row, column) mm

    # The documented preparation, written out independently: crop with a margin of 3 x the
    # largest LoG sigma, z-score with the ROI's statistics, mirror the left hip.
    margin = math.ceil(3 * 3.0 / 0.8)
    crop = pixels[row0 - margin : row1 + margin, col0 - margin : col1 + margin].astype(np.float64)
    roi = crop[margin:-margin, margin:-margin]
    crop = (crop - roi.mean()) / roi.std()
    mask = np.zeros(crop.shape, np.uint8)
    mask[margin:-margin, margin:-margin] = 1
    image = sitk.GetImageFromArray(np.ascontiguousarray(crop[:, ::-1]))
    image.SetSpacing((0.9, 0.8))
    mask_image = sitk.GetImageFromArray(np.ascontiguousarray(mask[:, ::-1]))
    mask_image.CopyInformation(image)
    direct = featureextractor.RadiomicsFeatureExtractor(params).execute(image, mask_image)

    ours = extractor.extract_roi(pixels, (row0, col0, row1, col1), "left", "neck", spacing)
    assert list(ours) == [f"left.neck.{name}" for name in extractor.roi_feature_names]
    for name in extractor.roi_feature_names:
        assert ours[f"left.neck.{name}"] == float(direct[name]), name


def test_left_hip_is_mirrored(extractor):
    """A left ROI of the mirrored radiograph has the features of the right ROI of the original."""
    pixels = textured_radiograph(3)
    row0, col0, row1, col1 = BOXES[("right", "neck")]
    width = pixels.shape[1]
    mirrored_box = (row0, width - col1, row1, width - col0)
    right = extractor.extract_roi(pixels, (row0, col0, row1, col1), "right", "neck")
    left = extractor.extract_roi(pixels[:, ::-1].copy(), mirrored_box, "left", "neck")
    # Equal up to rounding: the mirrored ROI's mean and std are summed in another order.
    np.testing.assert_allclose(list(left.values()), list(right.values()), rtol=1e-9, atol=1e-12)


def test_extract_study_orders_rois_like_feature_names(extractor):
    pixels = textured_radiograph(4)
    values = extractor.extract_study(pixels, BOXES)
    assert values.dtype == np.float32 and values.shape == (660,)
    cortex = extractor.extract_roi(pixels, BOXES[("left", "cortex")], "left", "cortex")
    start = extractor.feature_names.index(next(iter(cortex)))
    np.testing.assert_array_equal(values[start : start + 165], np.float32(list(cortex.values())))


@pytest.mark.parametrize(
    ("pixels", "box", "reason"),
    [
        (textured_radiograph(1), (20, 20, 23, 40), "too small"),
        (np.full((96, 128), 500.0, np.float32), (20, 20, 40, 40), "constant intensity"),
        (textured_radiograph(1), (20, 20, 20, 40), "empty box"),
        (textured_radiograph(1), (90, 20, 110, 40), "outside"),
    ],
)
def test_unusable_roi_raises_with_reason(extractor, pixels, box, reason):
    with pytest.raises(RoiExtractionError, match=reason) as info:
        extractor.extract_roi(pixels, box, "right", "cortex")
    assert info.value.side == "right" and info.value.roi == "cortex"
    assert str(info.value).startswith("right.cortex: ")


def test_failed_roi_is_recorded_and_the_others_extracted(extractor):
    boxes = dict(BOXES)
    boxes[("left", "cortex")] = (56, 88, 58, 106)
    del boxes[("right", "cortex")]
    values, failures = extractor.extract_study_with_failures(textured_radiograph(2), boxes)
    assert set(failures) == {"left.cortex", "right.cortex"}
    assert "too small" in failures["left.cortex"] and failures["right.cortex"] == "no ROI box"
    finite = np.isfinite(values).reshape(4, 165).all(axis=1)
    assert finite.tolist() == [True, False, True, False]  # right.neck, right.cortex, ...
    with pytest.raises(RoiExtractionError):
        extractor.extract_study(textured_radiograph(2), boxes)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"force2D": True}, "force2D"),
        ({"normalize": True}, "normalize"),
        ({"binCount": None, "binWidth": 25.0}, "binCount"),
    ],
)
def test_contradicting_parameter_file_is_refused(tmp_path, setting, message):
    with pytest.raises(ValueError, match=message):
        RadiomicsExtractor(_params_variant(tmp_path, "bad.yaml", **setting))


# ---------------------------------------------------------------------------- store


def test_parameter_change_never_returns_stale_features(tmp_path, extractor):
    items = write_cohort(tmp_path / "images", 2)
    root = tmp_path / "store"
    first = extract_many(items, FeatureStore(root, extractor), workers=0, progress=False)
    assert first.n_extracted == 2

    same_content = tmp_path / "copy.yaml"  # another path, same settings: same keys
    shutil.copy(DEFAULT_PARAMS_PATH, same_content)
    again = extract_many(
        items, FeatureStore(root, RadiomicsExtractor(same_content)), workers=0, progress=False
    )
    assert (again.n_from_cache, again.n_extracted) == (2, 0)

    changed = RadiomicsExtractor(_params_variant(tmp_path, "bins16.yaml", binCount=16))
    changed_store = FeatureStore(root, changed)
    assert changed_store.key_for(items[0]) != FeatureStore(root, extractor).key_for(items[0])
    assert changed_store.get(changed_store.key_for(items[0])) is None
    result = extract_many(items, changed_store, workers=0, progress=False)
    assert (result.n_from_cache, result.n_extracted) == (0, 2)
    assert not torch.equal(result.table.features, first.table.features)
    expected = changed.extract_study(np.load(items[0].image_path), BOXES)
    np.testing.assert_array_equal(result.table.features[0].numpy(), expected)


def test_boxes_and_image_bytes_are_part_of_the_key(tmp_path, extractor):
    item = write_cohort(tmp_path, 1)[0]
    store = FeatureStore(tmp_path / "store", extractor)
    moved_box = dict(BOXES)
    moved_box[("right", "neck")] = (21, 20, 39, 38)
    assert store.key_for(item) != store.key_for(StudyItem("S000", item.image_path, moved_box))
    key = store.key_for(item)
    np.save(item.image_path, textured_radiograph(99))
    assert store.key_for(item) != key


def test_crash_between_temporary_write_and_rename_leaves_no_entry(tmp_path, extractor):
    item = write_cohort(tmp_path / "images", 1)[0]
    root = tmp_path / "store"
    context = multiprocessing.get_context("spawn")
    child = context.Process(
        target=crash_between_write_and_rename, args=(str(DEFAULT_PARAMS_PATH), str(root), item)
    )
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -9  # killed after writing the temporary file

    store = FeatureStore(root, extractor)
    assert len(list(root.glob("*/.*.tmp"))) == 1
    assert store.get(store.key_for(item)) is None
    with pytest.raises(MissingEntriesError, match="S000"):
        load_many([item], store)
    result = extract_many([item], store, workers=0, progress=False)
    assert result.n_extracted == 1
    np.testing.assert_array_equal(load_many([item], store).features, result.table.features)
    assert store.remove_stale_temporaries(max_age_s=0) == 1


def test_truncated_or_misplaced_entry_reads_as_missing(tmp_path, extractor):
    items = write_cohort(tmp_path / "images", 2)
    store = FeatureStore(tmp_path / "store", extractor)
    expected = extract_many(items, store, workers=0, progress=False).table.features
    path = store.path_for(store.key_for(items[0]))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # e.g. a non-atomic copy
    assert store.get(store.key_for(items[0])) is None
    other = store.path_for(store.key_for(items[1]))
    shutil.copy(other, path.with_name("00" + path.name[2:]))  # a valid entry under a wrong name
    assert store.get("00" + store.key_for(items[0])[2:]) is None

    result = extract_many(items, store, workers=0, progress=False)
    assert (result.n_from_cache, result.n_extracted) == (1, 1)
    torch.testing.assert_close(result.table.features, expected)


@pytest.mark.slow
def test_two_processes_filling_one_store_at_once(tmp_path, extractor):
    items = write_cohort(tmp_path / "images", 3)
    root = tmp_path / "store"
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    children = [
        context.Process(
            target=fill_store, args=(str(DEFAULT_PARAMS_PATH), str(root), items, start, results)
        )
        for _ in range(2)
    ]
    for child in children:
        child.start()
    outputs = [results.get(timeout=180) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0

    expected = np.stack([extractor.extract_study(np.load(i.image_path), BOXES) for i in items])
    for _pid, features, _n_extracted in outputs:
        np.testing.assert_array_equal(features, expected)
    assert sum(n for _, _, n in outputs) >= 3  # every study extracted at least once
    assert len(list(root.glob("*/*.npz"))) == 3
    assert not list(root.glob("*/.*.tmp"))
    np.testing.assert_array_equal(
        load_many(items, FeatureStore(root, extractor)).features, expected
    )


def test_worker_pool_matches_in_process_and_load_many(tmp_path, extractor):
    items = write_cohort(tmp_path / "images", 4)
    items[1] = StudyItem(
        items[1].study_id, items[1].image_path, {**BOXES, ("left", "neck"): (0, 0, 3, 3)}
    )
    items.append(StudyItem("S_missing", tmp_path / "images" / "absent.npy", dict(BOXES)))
    store = FeatureStore(tmp_path / "store", extractor)
    pooled = extract_many(items, store, workers=2, chunk_size=1, progress=False)
    assert pooled.n_extracted == 4
    reference = extract_many(
        items, FeatureStore(tmp_path / "reference", extractor), workers=0, progress=False
    )
    torch.testing.assert_close(pooled.table.features, reference.table.features, equal_nan=True)

    failures = {(f.study_id, f.roi) for f in pooled.failures}
    assert failures == {("S001", "left.neck"), ("S_missing", "image")}
    assert torch.isnan(pooled.table.features[4]).all()
    assert pooled.stage_figures()["n_failed_rois"] == 1
    # The pool workers report their own peak memory (MB; the parent cannot see forkserver's).
    assert 10 < pooled.stage_figures()["worker_peak_rss_mb"] < 64_000
    assert reference.worker_peak_rss_mb is None  # no pool, no workers
    assert "S001 left.neck" in pooled.summary()

    with pytest.raises(MissingEntriesError, match="S_missing .*absent.npy"):
        load_many(items, store)  # an unreadable image is never stored
    loaded = load_many(items[:4], store)
    torch.testing.assert_close(loaded.features, pooled.table.features[:4], equal_nan=True)
    assert loaded.failures == [f for f in pooled.failures if f.study_id != "S_missing"]


# ---------------------------------------------------------------------------- tables


def test_feature_table_files_round_trip(tmp_path):
    table = FeatureTable(
        study_ids=["a", "b", "c"],
        features=torch.arange(6, dtype=torch.float32).reshape(3, 2),
        feature_names=["right.neck.x", "right.neck.y"],
        failures=[RoiFailure("b", "left.neck", "too small")],
    )
    path = save_feature_table(table, tmp_path / "all.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["study_id"] == ["a", "b", "c"] and payload["features"].shape == (3, 2)
    loaded = load_feature_table(path)
    assert (loaded.study_ids, loaded.feature_names) == (table.study_ids, table.feature_names)
    assert torch.equal(loaded.features, table.features) and loaded.failures == table.failures

    paths = save_split_tables(table, {"a": "train", "b": "val", "c": "train"}, tmp_path)
    train = load_feature_table(paths["train"])
    assert train.study_ids == ["a", "c"] and train.features[:, 0].tolist() == [0.0, 4.0]
    assert load_feature_table(paths["val"]).failures == table.failures
    with pytest.raises(KeyError, match="no split"):
        save_split_tables(table, {"a": "train"}, tmp_path)
