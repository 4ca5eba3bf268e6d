"""What one process does to fill the feature store: read a study, extract, write its entry.

Used in-process (``workers=0``) and inside pool workers. Kept free of torch so that spawned
workers start in a fraction of a second.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from osteo.memory import peak_memory_mb
from osteo.radiomics.store import FeatureStore, StoreEntry, StoreSpec, StudyItem

__all__ = [
    "StudyOutcome",
    "extract_study_item",
    "single_itk_thread",
    "init_worker",
    "extract_chunk",
]

# Failure slots that concern the whole study rather than one ROI.
IMAGE_FAILURE = "image"
STUDY_FAILURE = "study"


@dataclass
class StudyOutcome:
    index: int  # position in the caller's item list
    entry: StoreEntry
    from_cache: bool
    # A pool worker's own peak resident memory (MB), on the last outcome of each chunk: the
    # parent's getrusage does not see forkserver workers (they are the forkserver's children).
    worker_peak_rss_mb: float | None = None


def extract_study_item(store: FeatureStore, item: StudyItem, key: str, index: int) -> StudyOutcome:
    """The entry for ``item``: from the store if present, else extracted and written.

    ROI failures are deterministic given the inputs, so they are written with the entry. An
    image that cannot be read is not: it may be fixed by installing a codec, which the key does
    not capture, so that failure is returned but never stored.
    """
    entry = store.get(key)  # another process may have filled it since the caller looked
    if entry is not None:
        return StudyOutcome(index, entry, from_cache=True)
    nan_features = np.full(store.n_features, np.nan, dtype=np.float32)
    try:
        pixels, file_spacing = store.loader(item.image_path)
    except Exception as exc:  # any reader error: report it, carry on with the other studies
        reason = f"cannot read {item.image_path}: {exc}"
        return StudyOutcome(index, StoreEntry(nan_features, {IMAGE_FAILURE: reason}), False)
    spacing = item.spacing if item.spacing is not None else file_spacing
    try:
        features, failures = store.extractor.extract_study_with_failures(
            pixels, item.boxes, spacing
        )
    except Exception as exc:  # a bug or resource error; not stored, so a rerun retries it
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return StudyOutcome(index, StoreEntry(nan_features, {STUDY_FAILURE: last}), False)
    entry = StoreEntry(features, failures)
    store.put(key, entry, item.study_id)
    return StudyOutcome(index, entry, from_cache=False)


@contextmanager
def single_itk_thread() -> Iterator[None]:
    """Run ITK filters single-threaded meanwhile: on ROI-sized images its threads cost more
    than they save (about 35 vs 55 ms per ROI here), and the values do not change."""
    import SimpleITK as sitk

    previous = sitk.ProcessObject_GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(previous)


# One store (and pyradiomics extractor) per worker process, built once by the initializer.
_worker_store: FeatureStore | None = None


def init_worker(spec: StoreSpec) -> None:
    """Pool initializer: one ITK thread per worker for good (see ``single_itk_thread``; the
    pool already keeps every core busy), then the worker's own store."""
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    global _worker_store
    _worker_store = spec.build()


def extract_chunk(tasks: list[tuple[int, StudyItem, str]]) -> list[StudyOutcome]:
    """Pool task: a chunk of (index, item, key); chunks amortise inter-process overhead."""
    if _worker_store is None:
        raise RuntimeError("extract_chunk runs in a pool started with init_worker")
    outcomes = [extract_study_item(_worker_store, item, key, index) for index, item, key in tasks]
    if outcomes:
        outcomes[-1].worker_peak_rss_mb = peak_memory_mb()[0]
    return outcomes
