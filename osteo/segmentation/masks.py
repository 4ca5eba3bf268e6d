"""Mask prediction for many radiographs: batched, post-processed, cached by checkpoint and image.

The cache key is the hash of the checkpoint's bytes, the image's bytes and the
post-processing version, so a new model or an edited image never returns a stale mask, and a
second run over the same data reads every mask from disk.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.data import decollate_batch, list_data_collate
from scipy import ndimage
from tqdm.auto import tqdm

from osteo.constants import FEMUR_LABELS
from osteo.data.assessability import mask_reasons
from osteo.data.io import failure_reason
from osteo.data.masks import MaskFormatError, read_label_map
from osteo.data.transforms import SEGMENTATION_INPUT_VERSION, segmentation_inference_transforms
from osteo.files import atomic_path
from osteo.hashing import file_digest

__all__ = [
    "MaskCache",
    "CacheEntryWarning",
    "MaskPrediction",
    "assign_sides",
    "postprocess_mask",
    "predict_masks",
    "load_segmentation_model",
    "labels_on_native_grid",
    "postprocess_in_box",
]

POSTPROCESS_VERSION = f"sides-lcc-fill-v2:input-v{SEGMENTATION_INPUT_VERSION}:native-bilinear-v1"

# The second-largest femur region must be at least this share of the largest to count as the
# other femur (smaller: a stray island, or one femur missed; the network's labels then stand).
_OTHER_FEMUR_MIN_SHARE = 0.25


def _component_sizes(components: np.ndarray, count: int) -> np.ndarray:
    """Pixel count of components 1..count (``ndimage.sum_labels`` of ones, ~20x faster)."""
    return np.bincount(components.ravel(), minlength=count + 1)[1:]


def _fill_holes(region: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes`` computed inside the region's bounding box plus one pixel.

    Identical to filling the whole image: a background pixel in the box reaches the image
    border exactly when it reaches the box's one-pixel background ring (the ring is connected
    and everything outside the box is background). At 0.15-0.7 mm a femur covers a small part
    of the radiograph, so this saves most of the work.
    """
    box = ndimage.find_objects(region.astype(np.uint8))
    out = np.zeros_like(region, dtype=bool)
    if not box:
        return out
    rows, cols = box[0]
    r0, r1 = max(rows.start - 1, 0), min(rows.stop + 1, region.shape[0])
    c0, c1 = max(cols.start - 1, 0), min(cols.stop + 1, region.shape[1])
    out[r0:r1, c0:c1] = ndimage.binary_fill_holes(region[r0:r1, c0:c1])
    return out


def assign_sides(label_map: np.ndarray) -> np.ndarray:
    """Label the two femur regions by their side in the image, whatever the network said.

    A U-Net that has seen few training steps finds "femur" long before it tells the patient's
    left from right (the two are mirror images; only the context says which is which), and
    labels both femurs 1 or swaps them: the left femur then disappears from the mask. An AP
    radiograph shows the patient's right femur on the image's left, so when the femur pixels
    form two large regions, the one further left is label 1 and the other label 2.
    """
    components, count = ndimage.label(label_map > 0)
    if count < 2:
        return label_map
    sizes = _component_sizes(components, count)
    first, second = (int(i) + 1 for i in np.argsort(sizes)[::-1][:2])
    if sizes[second - 1] < _OTHER_FEMUR_MIN_SHARE * sizes[first - 1]:
        return label_map
    # Each region's mean column and relabelling inside its own bounding box: at 0.15 mm the
    # image is 7-10 MP and the femurs a tenth of it (ndimage.center_of_mass over every label
    # took most of the post-processing time).
    boxes = ndimage.find_objects(components)

    def mean_column(index: int) -> float:
        box = boxes[index - 1]
        return float(np.nonzero(components[box] == index)[1].mean()) + box[1].start

    image_left, image_right = (
        (first, second) if mean_column(first) < mean_column(second) else (second, first)
    )
    out = label_map.copy()
    for index, value in ((image_left, 1), (image_right, 2)):
        box = boxes[index - 1]
        out[box][components[box] == index] = value
    return out


def postprocess_mask(label_map: np.ndarray) -> np.ndarray:
    """Assign the femurs' sides, keep the largest component of each femur, fill its holes.

    Stray islands (a patch of pelvis labelled femur) would pull the ROI geometry off; holes
    would break the distance transform used to find the femoral head.
    """
    label_map = assign_sides(label_map)
    out = np.zeros(label_map.shape, dtype=np.uint8)
    for _, label in FEMUR_LABELS:
        components, count = ndimage.label(label_map == label)
        if count == 0:
            continue
        largest = components == (int(np.argmax(_component_sizes(components, count))) + 1)
        out[_fill_holes(largest) & (out == 0)] = label
    return out


def _axis_coordinates(affine: np.ndarray, spacing: float, axis: int, start: int, stop: int):
    """Coarse-grid coordinates of native pixels ``start..stop-1`` along ``axis``."""
    native_mm = np.arange(start, stop, dtype=np.float64) * spacing
    return (native_mm - affine[axis, 2]) / affine[axis, axis]


def _lerp(values: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` at ``coords`` along ``axis`` (clamped at the ends,
    as a nearest-border resampler pads)."""
    n = values.shape[axis]
    coords = np.clip(coords, 0, n - 1)
    lo = np.minimum(np.floor(coords).astype(np.intp), max(n - 2, 0))
    hi = np.minimum(lo + 1, n - 1)
    weight = (coords - lo).astype(np.float32)
    shape = [1] * values.ndim
    shape[axis] = -1
    weight = weight.reshape(shape)
    return np.take(values, lo, axis=axis) * (1 - weight) + np.take(values, hi, axis=axis) * weight


def labels_on_native_grid(
    logits: np.ndarray,
    affine: np.ndarray,
    spacing: tuple[float, float],
    shape: tuple[int, int],
    rows_per_chunk: int = 512,
) -> np.ndarray:
    """The label map on the radiograph's grid: the coarse logits (classes, rows, columns)
    interpolated bilinearly at every native pixel (``affine``: coarse index -> mm; native
    pixel (i, j) lies at (i, j) x ``spacing`` mm), then the arg-max.

    Exact, yet only the femurs' neighbourhood is interpolated: where the four coarse
    neighbours of a native pixel all have background as their arg-max, every convex mix of
    their logits does too, so pixels outside the coarse foreground's box (one coarse pixel
    wider) are background without computing them.
    """
    affine = np.asarray(affine, dtype=np.float64)
    if abs(affine[0, 1]) > 1e-9 or abs(affine[1, 0]) > 1e-9:
        raise ValueError(f"the segmentation grid is rotated (affine {affine.tolist()})")
    out = np.zeros(shape, dtype=np.uint8)
    foreground = np.argmax(logits, axis=0) > 0
    if not foreground.any():
        return out
    if not (affine[0, 0] > 0 and affine[1, 1] > 0):
        raise ValueError(f"the segmentation grid is flipped (affine {affine.tolist()})")
    (coarse_rows, coarse_cols) = ndimage.find_objects(foreground.astype(np.uint8))[0]
    bounds = []
    for axis, found, length in ((0, coarse_rows, shape[0]), (1, coarse_cols, shape[1])):
        ends = [affine[axis, axis] * c + affine[axis, 2] for c in (found.start - 1, found.stop)]
        lo = int(np.clip(np.ceil(ends[0] / spacing[axis]), 0, length))
        hi = int(np.clip(np.floor(ends[1] / spacing[axis]) + 1, lo, length))
        # Native pixels past the coarse grid take its edge values (clamped): foreground on
        # the grid's edge reaches on to the radiograph's edge.
        if found.start == 0:
            lo = 0
        if found.stop == foreground.shape[axis]:
            hi = length
        bounds.append((lo, hi))
    (r0, r1), (c0, c1) = bounds
    cols = _lerp(logits.astype(np.float32), _axis_coordinates(affine, spacing[1], 1, c0, c1), 2)
    for start in range(r0, r1, rows_per_chunk):
        stop = min(start + rows_per_chunk, r1)
        block = _lerp(cols, _axis_coordinates(affine, spacing[0], 0, start, stop), 1)
        out[start:stop, c0:c1] = np.argmax(block, axis=0)
    return out


def postprocess_in_box(label_map: np.ndarray) -> np.ndarray:
    """``postprocess_mask`` on the labels' bounding box: the same result (sides, components
    and hole filling depend on the femur pixels only, not on where the box sits)."""
    box = ndimage.find_objects((label_map > 0).astype(np.uint8))
    if not box:
        return postprocess_mask(label_map)
    rows, cols = box[0]
    r0, r1 = max(rows.start - 1, 0), min(rows.stop + 1, label_map.shape[0])
    c0, c1 = max(cols.start - 1, 0), min(cols.stop + 1, label_map.shape[1])
    out = np.zeros_like(label_map)
    out[r0:r1, c0:c1] = postprocess_mask(label_map[r0:r1, c0:c1])
    return out


def load_segmentation_model(checkpoint: str | Path, device: str | torch.device = "cpu"):
    """Load a FemurSegmentationModule checkpoint without unpickling arbitrary objects."""
    from osteo.segmentation.module import FemurSegmentationModule

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = FemurSegmentationModule(**state["hyper_parameters"])
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()


class CacheEntryWarning(UserWarning):
    """A cache entry could not be read; it is recomputed."""


class MaskCache:
    """Label maps on disk under ``root/<key[:2]>/<key>.png``, written atomically.

    The rule of every osteo cache: an entry that cannot be read (truncated by a full disk, a
    bit flip, a foreign file) is a miss, recomputed with a warning, never a crash.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def key(self, checkpoint_digest: str, image_digest: str) -> str:
        text = f"{checkpoint_digest}:{image_digest}:{POSTPROCESS_VERSION}"
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.png"

    def get(self, key: str) -> Path | None:
        path = self.path(key)
        return path if path.is_file() else None

    def load(self, key: str) -> tuple[Path, np.ndarray, tuple[float, float]] | None:
        """The entry's path, label map and spacing, or None for a miss (absent or unreadable)."""
        path = self.get(key)
        if path is None:
            return None
        try:
            label_map, spacing = read_label_map(path)
        except (RuntimeError, MaskFormatError) as err:
            last = str(err).strip().splitlines()[-1] if str(err).strip() else ""
            warnings.warn(
                f"mask cache entry {path} is unreadable ({last}); predicting it again",
                CacheEntryWarning,
                stacklevel=2,
            )
            return None
        return path, label_map, spacing

    def put(self, key: str, mask: np.ndarray, spacing: tuple[float, float] | None) -> Path:
        path = self.path(key)
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        if spacing is not None:
            image.SetSpacing((float(spacing[1]), float(spacing[0])))
        # A reader (another rank, a later run) sees either no entry or a complete one, never
        # a half-written PNG; SimpleITK picks the format by the temporary name's suffix.
        with atomic_path(path, suffix=".png") as temporary:
            sitk.WriteImage(image, str(temporary))
        return path


@dataclass
class MaskPrediction:
    study_id: str
    mask_path: Path | None
    cached: bool
    error: str | None = None
    flags: list[str] = field(default_factory=list)


def _spacing_of(item: dict) -> tuple[float, float]:
    spacing = item["image"].meta.get("spacing")
    return float(spacing[0]), float(spacing[1])


def predict_masks(
    model,
    studies: Sequence[tuple[str, str]],
    cache: MaskCache,
    checkpoint_digest: str,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
    image_digest: Callable[[str], str] = file_digest,
) -> list[MaskPrediction]:
    """Predict (or reuse) a post-processed femur mask for each ``(study_id, image_path)``.

    A file that cannot be read gets ``error`` set and the batch goes on. ``image_digest``
    hashes an image for its cache key: a run passes its memo (``RunContext.hashes.digest``),
    so the images it has hashed already are not read again.
    """
    hp = model.hparams
    pre = segmentation_inference_transforms(hp.spacing_mm, hp.spatial_size)
    results: dict[str, MaskPrediction] = {}
    todo: list[tuple[str, str, str]] = []
    for study_id, image_path in studies:
        try:
            key = cache.key(checkpoint_digest, image_digest(image_path))
        except OSError as err:
            results[study_id] = MaskPrediction(study_id, None, False, f"{image_path}: {err}")
            continue
        hit = cache.load(key)
        if hit is not None:
            path, label_map, spacing = hit
            results[study_id] = MaskPrediction(
                study_id, path, True, None, mask_reasons(label_map, spacing)
            )
        else:
            todo.append((study_id, image_path, key))

    model = model.to(device).eval()
    bar = tqdm(total=len(todo), desc="femur masks", disable=not progress or not todo, unit="img")
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        items, keys = [], []
        for study_id, image_path, key in chunk:
            try:
                item = pre({"image": image_path})
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                results[study_id] = MaskPrediction(study_id, None, False, failure_reason(err))
                continue
            item["study_id"] = study_id
            items.append(item)
            keys.append(key)
        if items:
            batch = list_data_collate(items)
            with torch.inference_mode():
                batch["pred"] = model(batch["image"].to(device)).float().cpu()
            for item, key in zip(decollate_batch(batch), keys, strict=True):
                # Logits back onto the radiograph's own grid through the input's affine.
                spacing = _spacing_of(item)
                label_map = labels_on_native_grid(
                    np.asarray(item["pred"].detach().cpu()),
                    np.asarray(item["image"].affine),
                    spacing,
                    tuple(item["original_shape"]),
                )
                label_map = postprocess_in_box(label_map)
                path = cache.put(key, label_map, spacing)
                results[item["study_id"]] = MaskPrediction(
                    item["study_id"], path, False, None, mask_reasons(label_map, spacing)
                )
        bar.update(len(chunk))
    bar.close()
    return [results[study_id] for study_id, _ in studies]
