"""Fill the feature store with K worker processes, and read a cohort's features back from it.

``extract_many`` is the core of ``tools/extract_radiomics.py``: it reuses every entry already in
the store, extracts the rest in a process pool (spawn/forkserver-safe, chunked, with a progress
bar), records failed ROIs with their reasons and goes on. ``load_many`` is the fast path once
the store is filled: hash, look up, stack.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from osteo.radiomics.store import FeatureStore, StoreEntry, StudyItem
from osteo.radiomics.table import FeatureTable, RoiFailure
from osteo.radiomics.workers import (
    IMAGE_FAILURE,
    StudyOutcome,
    extract_chunk,
    extract_study_item,
    init_worker,
    single_itk_thread,
)

__all__ = ["ExtractionResult", "MissingEntriesError", "extract_many", "load_many"]


class MissingEntriesError(LookupError):
    """``load_many`` found studies that the store does not hold (run ``extract_many``)."""

    def __init__(self, study_ids: Sequence[str], reasons: Mapping[str, str] | None = None):
        reasons = reasons or {}
        shown = ", ".join(f"{s} ({reasons[s]})" if s in reasons else s for s in study_ids[:10])
        if len(study_ids) > 10:
            shown += ", ..."
        super().__init__(
            f"{len(study_ids)} studies have no radiomics features in the store: {shown}; "
            "extract them first (extract_many / tools/extract_radiomics.py)"
        )
        self.study_ids = list(study_ids)


@dataclass
class ExtractionResult:
    table: FeatureTable
    n_from_cache: int
    n_extracted: int
    seconds: float
    workers: int
    worker_peak_rss_mb: float | None = None  # the largest pool worker's peak (None: no pool)

    @property
    def failures(self) -> list[RoiFailure]:
        return self.table.failures

    def stage_figures(self) -> dict[str, Any]:
        """Figures for ``stages.json``: counts, time, and failures grouped by reason."""
        by_reason = Counter(f.reason for f in self.failures)
        return {
            "n_studies": len(self.table),
            "n_from_cache": self.n_from_cache,
            "n_extracted": self.n_extracted,
            "n_failed_rois": sum(f.roi not in ("image", "study") for f in self.failures),
            "n_failed_studies": sum(f.roi in ("image", "study") for f in self.failures),
            "failures_by_reason": dict(by_reason.most_common()),
            "seconds": round(self.seconds, 3),
            "workers": self.workers,
            "worker_peak_rss_mb": self.worker_peak_rss_mb,
        }

    def summary(self, max_failures: int = 20) -> str:
        """Plain-text report for the command line."""
        figures = self.stage_figures()
        lines = [
            f"radiomics: {figures['n_studies']} studies, {figures['n_from_cache']} from the store, "
            f"{figures['n_extracted']} extracted in {self.seconds:.1f} s with {self.workers} "
            f"worker(s); {figures['n_failed_rois']} failed ROIs, "
            f"{figures['n_failed_studies']} failed studies"
        ]
        for failure in self.failures[:max_failures]:
            lines.append(f"  {failure.study_id} {failure.roi}: {failure.reason}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more")
        return "\n".join(lines)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _default_mp_context() -> str:
    # forkserver: workers do not inherit the parent's threads (torch, Lightning, CUDA), which
    # makes plain fork unsafe, and start faster than spawn. spawn where forkserver is missing.
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _keys(
    items: Sequence[StudyItem], store: FeatureStore, threads: int
) -> tuple[list[str | None], dict[int, str]]:
    """Store keys for all items (hashing files in threads: hashlib releases the GIL), and the
    reason for each item whose files cannot be hashed."""

    def key_or_error(item: StudyItem) -> tuple[str | None, str | None]:
        try:
            return store.key_for(item), None
        except OSError as exc:
            return None, f"cannot read {exc.filename or item.image_path}: {exc.strerror or exc}"

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(key_or_error, items))
    keys = [key for key, _ in results]
    errors = {index: error for index, (_, error) in enumerate(results) if error is not None}
    return keys, errors


def _check_unique(items: Sequence[StudyItem]) -> None:
    counts = Counter(item.study_id for item in items)
    duplicates = [study_id for study_id, n in counts.items() if n > 1]
    if duplicates:
        raise ValueError(f"duplicate study ids: {duplicates[:10]}")


def _table(
    items: Sequence[StudyItem], entries: Sequence[StoreEntry], store: FeatureStore
) -> FeatureTable:
    features = (
        np.stack([entry.features for entry in entries])
        if entries
        else np.zeros((0, store.n_features), dtype=np.float32)
    )
    failures = [
        RoiFailure(item.study_id, roi, reason)
        for item, entry in zip(items, entries, strict=True)
        for roi, reason in entry.failures.items()
    ]
    return FeatureTable(
        study_ids=[item.study_id for item in items],
        features=torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)),
        feature_names=list(store.extractor.feature_names),
        failures=failures,
    )


def extract_many(
    items: Iterable[StudyItem],
    store: FeatureStore,
    *,
    workers: int | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
    mp_context: str | None = None,
) -> ExtractionResult:
    """Features of every item, from the store or extracted with ``workers`` processes.

    ``workers=0`` extracts in this process (no pool); ``None`` uses every available core.
    Rows follow ``items``; failed ROIs are NaN and listed in ``result.failures`` with reasons.
    Safe to run from several processes on one store at once (they may duplicate work, never
    corrupt entries). As with any spawn/forkserver pool, the calling script must guard its
    entry point with ``if __name__ == "__main__":``.
    """
    start = time.perf_counter()
    items = list(items)
    _check_unique(items)
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0: in this process), got {workers}")
    store.remove_stale_temporaries()

    keys, key_errors = _keys(items, store, threads=max(1, workers))
    entries: list[StoreEntry | None] = [None] * len(items)
    nan_features = np.full(store.n_features, np.nan, dtype=np.float32)
    for index, reason in key_errors.items():
        entries[index] = StoreEntry(nan_features.copy(), {IMAGE_FAILURE: reason})
    pending: list[tuple[int, StudyItem, str]] = []
    for index, (item, key) in enumerate(zip(items, keys, strict=True)):
        if key is None:
            continue
        entries[index] = store.get(key)
        if entries[index] is None:
            pending.append((index, item, key))
    n_from_cache = len(items) - len(pending) - len(key_errors)

    n_extracted = 0
    worker_peak = None
    bar = tqdm(total=len(pending), desc="radiomics", unit="study", disable=not progress)
    try:
        for outcome in _run(pending, store, workers, chunk_size, mp_context, bar):
            entries[outcome.index] = outcome.entry
            if outcome.worker_peak_rss_mb is not None:
                worker_peak = max(worker_peak or 0.0, outcome.worker_peak_rss_mb)
            if outcome.from_cache:  # another process filled it meanwhile
                n_from_cache += 1
            else:
                n_extracted += 1
    finally:
        bar.close()

    return ExtractionResult(
        table=_table(items, entries, store),  # type: ignore[arg-type]  # all filled above
        n_from_cache=n_from_cache,
        n_extracted=n_extracted,
        seconds=time.perf_counter() - start,
        workers=workers,
        worker_peak_rss_mb=worker_peak,
    )


def _run(
    pending: list[tuple[int, StudyItem, str]],
    store: FeatureStore,
    workers: int,
    chunk_size: int | None,
    mp_context: str | None,
    bar: tqdm,
) -> Iterator[StudyOutcome]:
    if not pending:
        return
    if workers == 0:
        with single_itk_thread():
            for index, item, key in pending:
                yield extract_study_item(store, item, key, index)
                bar.update(1)
        return
    if chunk_size is None:
        # Small chunks (<= 8 studies, ~1 s) keep the workers' finishing times within one chunk
        # of each other and the bar moving; the per-chunk overhead is a few small pickles.
        chunk_size = max(1, min(8, math.ceil(len(pending) / (workers * 8))))
    chunks = [pending[i : i + chunk_size] for i in range(0, len(pending), chunk_size)]
    context = multiprocessing.get_context(mp_context or _default_mp_context())
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)),
        mp_context=context,
        initializer=init_worker,
        initargs=(store.spec(),),
    )
    try:
        futures = [pool.submit(extract_chunk, chunk) for chunk in chunks]
        for future in as_completed(futures):
            outcomes = future.result()
            yield from outcomes
            bar.update(len(outcomes))
    finally:
        # On an error or Ctrl-C, do not wait for the queued chunks.
        pool.shutdown(wait=True, cancel_futures=True)


def load_many(
    items: Iterable[StudyItem], store: FeatureStore, *, hash_threads: int = 4
) -> FeatureTable:
    """Stack the stored features of ``items`` (rows in item order) into one table.

    Raises ``MissingEntriesError`` naming the studies the store lacks; failed ROIs stored with
    an entry come back as NaN plus their ``RoiFailure``.
    """
    items = list(items)
    _check_unique(items)
    keys, key_errors = _keys(items, store, threads=hash_threads)
    entries = [store.get(key) if key is not None else None for key in keys]
    missing = [item.study_id for item, entry in zip(items, entries, strict=True) if entry is None]
    if missing:
        reasons = {items[index].study_id: reason for index, reason in key_errors.items()}
        raise MissingEntriesError(missing, reasons)
    return _table(items, entries, store)  # type: ignore[arg-type]  # none is None
