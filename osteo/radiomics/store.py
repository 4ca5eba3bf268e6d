"""A content-addressed, multi-process-safe store of per-study radiomics features.

Key: a hash (``osteo.hashing``) of the image file's bytes, the ROI boxes (and the mask's bytes
when given), a spacing override, the image loader and the extractor's fingerprint (parsed
parameter file, osteo's preparation options, library versions). Any change to one of them
gives another key, so a parameter change never returns stale features; paths and timestamps
are not part of it, so a moved cohort keeps its cache.

Layout: ``<root>/<key[:2]>/<key>.npz``, one uncompressed ``.npz`` per study (numpy only, so
worker processes never import torch; loads with ``allow_pickle=False``). Arrays: ``key``,
``features`` (float32, NaN where a ROI failed), ``failed_rois`` and ``failure_reasons``
(parallel str arrays), ``study_id`` (informative only: identical inputs share one entry).

Writes are atomic: the entry is written to a temporary file in the same folder, fsynced, then
``os.replace``d onto its final name, so a reader sees a complete entry or none. Several
processes (DDP ranks, workers) may fill the store at once without a lock: racing writers of
one key write identical bytes and the last rename wins. A crash leaves at most a ``.tmp`` file,
which is never read. An entry that does not load, or whose content does not match its key, is
treated as missing and recomputed.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from osteo.hashing import digest, file_digest
from osteo.radiomics.extractor import ROI_SLOTS, RadiomicsExtractor, slot_name

__all__ = [
    "ENTRY_FORMAT",
    "StudyItem",
    "StoreEntry",
    "FeatureStore",
    "StoreSpec",
    "read_pixels",
]

# Bump when the entry layout changes; part of every key, so old entries are simply not found.
ENTRY_FORMAT = 1
_TMP_SUFFIX = ".tmp"

logger = logging.getLogger(__name__)

PixelLoader = Callable[[Path], tuple[np.ndarray, tuple[float, float] | None]]


@dataclass(frozen=True)
class StudyItem:
    """One radiograph to extract: its image, its ROI boxes, optional extras for the key.

    ``boxes`` maps ``(side, roi)`` to ``(row0, col0, row1, col1)``; a missing slot is recorded as
    a failed ROI. ``spacing`` (row, column mm) overrides the file's spacing. ``mask_path`` adds
    the femur mask's bytes to the key. ``image_digest`` and ``mask_digest``
    (``osteo.hashing.file_digest`` of the image and the mask) skip hashing a file when the
    caller already knows it (a run's stages share one memo of them).
    """

    study_id: str
    image_path: Path
    boxes: Mapping[tuple[str, str], Sequence[int]]
    spacing: tuple[float, float] | None = None
    mask_path: Path | None = None
    image_digest: str | None = None
    mask_digest: str | None = None


@dataclass
class StoreEntry:
    """The cached result for one study."""

    features: np.ndarray  # float32 [n_features], NaN where a ROI failed
    failures: dict[str, str] = field(default_factory=dict)  # slot name -> reason


def read_pixels(path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Default loader: ``.npy`` arrays as they are (1 mm unknown), everything else via
    ``osteo.data.io.read_radiograph`` (DICOM, PNG, TIFF, NIfTI, ...)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False).astype(np.float32, copy=False), None
    from osteo.data.io import read_radiograph

    radiograph = read_radiograph(path)
    return radiograph.pixels, radiograph.spacing


@dataclass(frozen=True)
class StoreSpec:
    """Picklable recipe to rebuild a ``FeatureStore`` in a worker process."""

    root: Path
    params_path: Path
    extractor_options: dict[str, Any]
    loader: PixelLoader
    fingerprint_digest: str

    def build(self) -> FeatureStore:
        extractor = RadiomicsExtractor(self.params_path, **self.extractor_options)
        if extractor.fingerprint_digest != self.fingerprint_digest:
            raise RuntimeError(
                f"{self.params_path} or a library changed while features were being extracted; "
                "restart the extraction"
            )
        return FeatureStore(self.root, extractor, loader=self.loader)


class FeatureStore:
    """Per-study feature entries on disk, keyed by the hash of everything they depend on."""

    def __init__(
        self,
        root: str | Path,
        extractor: RadiomicsExtractor,
        *,
        loader: PixelLoader = read_pixels,
    ):
        self.root = Path(root)
        self.extractor = extractor
        self.loader = loader
        self.n_features = len(extractor.feature_names)

    def spec(self) -> StoreSpec:
        return StoreSpec(
            root=self.root,
            params_path=self.extractor.params_path,
            extractor_options=self.extractor.options,
            loader=self.loader,
            fingerprint_digest=self.extractor.fingerprint_digest,
        )

    # ------------------------------------------------------------------ keys

    def key_for(self, item: StudyItem) -> str:
        """The entry key of ``item``; hashes the image (and mask) file unless given."""
        boxes = {
            slot_name(side, roi): [int(v) for v in item.boxes[(side, roi)]]
            for side, roi in ROI_SLOTS
            if (side, roi) in item.boxes
        }
        payload = {
            "entry_format": ENTRY_FORMAT,
            "image_digest": item.image_digest or file_digest(item.image_path),
            "mask_digest": (
                item.mask_digest or file_digest(item.mask_path)
                if item.mask_path is not None
                else None
            ),
            "boxes": boxes,
            "spacing": [float(v) for v in item.spacing] if item.spacing is not None else None,
            "loader": f"{self.loader.__module__}.{self.loader.__qualname__}",
            "extractor": self.extractor.fingerprint_digest,
        }
        return digest(payload)

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    # ------------------------------------------------------------------ entries

    def get(self, key: str) -> StoreEntry | None:
        """The entry under ``key``, or ``None`` when absent or unreadable (then recomputed)."""
        path = self.path_for(key)
        try:
            with np.load(path, allow_pickle=False) as npz:
                stored_key = str(npz["key"])
                features = npz["features"]
                failed = npz["failed_rois"].tolist()
                reasons = npz["failure_reasons"].tolist()
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            logger.warning("feature store: unreadable entry %s (%s); recomputing it", path, exc)
            return None
        if stored_key != key or features.shape != (self.n_features,) or len(failed) != len(reasons):
            logger.warning("feature store: entry %s does not match its key; recomputing it", path)
            return None
        return StoreEntry(
            features.astype(np.float32, copy=False), dict(zip(failed, reasons, strict=True))
        )

    def put(self, key: str, entry: StoreEntry, study_id: str = "") -> Path:
        """Write ``entry`` atomically under ``key`` and return its path."""
        features = np.asarray(entry.features, dtype=np.float32)
        if features.shape != (self.n_features,):
            raise ValueError(f"expected {self.n_features} features, got shape {features.shape}")
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique per writer, same folder (os.replace is only atomic within one file system).
        tmp = path.parent / f".{key}.{os.getpid()}.{uuid.uuid4().hex}{_TMP_SUFFIX}"
        try:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    key=np.array(key),
                    features=features,
                    failed_rois=np.array(list(entry.failures), dtype=str),
                    failure_reasons=np.array(list(entry.failures.values()), dtype=str),
                    study_id=np.array(study_id),
                )
                fh.flush()
                os.fsync(fh.fileno())  # the data is on disk before the name points at it
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def remove_stale_temporaries(self, max_age_s: float = 24 * 3600) -> int:
        """Delete ``.tmp`` files left by crashed writers; young ones may belong to live writers."""
        if not self.root.is_dir():
            return 0
        removed = 0
        cutoff = time.time() - max_age_s
        for tmp in self.root.glob(f"*/.*{_TMP_SUFFIX}"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # its writer renamed or removed it meanwhile
        return removed
