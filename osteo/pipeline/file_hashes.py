"""Each file's content hash read once per run: a memo of ``osteo.hashing.file_digest`` that
every stage of a run shares (``RunContext.hashes``).

Cache keys hash the bytes of radiographs and masks. Without a memo each stage that keys on an
image (the U-Net's training key, mask prediction, the feature store) read every radiograph in
full again, before any progress showed. Here a file is hashed the first time a stage asks, with
a progress bar (bytes, rate and ETA) when a stage asks for a whole cohort (``prime``), and every
later request in the run is a dictionary look-up.

The memo is keyed by the resolved path and the file's stat signature: size, ``mtime_ns``,
``ctime_ns`` and inode. Any write changes mtime and ctime, so an edited file is hashed again; a
copy that keeps the old mtime (``cp -p``, ``rsync -a``) still gets a new ctime and inode. The
value is ``file_digest``'s own (SHA-256 of the bytes), so the keys of existing caches do not
change.

With a ``store`` file (``<cache_dir>/file_hashes.json``) the memo outlives the run: a warm run
stats each file instead of reading it. The file is merged and rewritten under a ``filelock``
(concurrent runs share one cache folder), atomically (``osteo.files``), and keeps only entries
whose file still has the recorded signature. It holds resolved image paths, like the manifest;
it lives in the cache folder, never in a run folder. A file modified less than ``RACY_S``
seconds before it was hashed could be rewritten within the same timestamp tick without any
visible change (git's "racy clean" problem; FAT and HFS+ keep 1-2 s timestamps), so such an
entry serves this process only and is not written to the store.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from osteo import hashing
from osteo.files import write_json_atomic

__all__ = ["FileHashes", "STORE_NAME", "RACY_S"]

STORE_NAME = "file_hashes.json"
STORE_FORMAT = 1
RACY_S = 2.0
_LOCK_TIMEOUT_S = 60.0

logger = logging.getLogger(__name__)

Signature = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def _signature(stat: os.stat_result) -> Signature:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


class FileHashes:
    """Memoised ``file_digest`` for one run (thread-safe; one instance per process).

    ``reads`` counts files read in full, ``hits`` requests answered from the memo.
    """

    def __init__(
        self, store: str | Path | None = None, *, progress: bool = True, threads: int = 4
    ) -> None:
        self.store = Path(store) if store is not None else None
        self.progress = progress
        self.threads = max(1, threads)
        self.reads = 0
        self.hits = 0
        self._memo: dict[str, tuple[Signature, str]] = {}
        self._unsaved: dict[str, tuple[Signature, str]] = {}
        self._lock = threading.Lock()
        if self.store is not None:
            self._memo.update(self._read_store())

    # ------------------------------------------------------------------ hashing

    def digest(self, path: str | Path) -> str:
        """``file_digest(path)``, read only when the memo has no entry with the file's current
        size, times and inode. Raises ``OSError`` like ``file_digest`` for a missing or
        unreadable file (naming the path as given)."""
        key = str(Path(path).resolve())
        signature = _signature(os.stat(path))
        with self._lock:
            known = self._memo.get(key)
            if known is not None and known[0] == signature:
                self.hits += 1
                return known[1]
        value = hashing.file_digest(path)
        after = _signature(os.stat(path))
        with self._lock:
            self.reads += 1
            if after == signature:  # not written while it was read
                self._memo[key] = (signature, value)
                if time.time_ns() - signature[1] >= RACY_S * 1e9:
                    self._unsaved[key] = (signature, value)
        return value

    def prime(self, paths: Iterable[str | Path], desc: str = "hashing files") -> int:
        """Hash every file of ``paths`` the memo does not know yet, in threads (hashlib and file
        reads release the GIL), with a bar in bytes (rate, ETA). A file that cannot be read is
        left for the stage's own ``digest`` call to report. Returns the number of files read."""
        todo: list[tuple[str | Path, int]] = []
        seen: set[str] = set()
        for path in paths:
            try:
                key = str(Path(path).resolve())
                stat = os.stat(path)
            except OSError:
                continue
            known = self._memo.get(key)
            if key in seen or (known is not None and known[0] == _signature(stat)):
                continue
            seen.add(key)
            todo.append((path, stat.st_size))
        if not todo:
            return 0

        def one(job: tuple[str | Path, int]) -> int:
            try:
                self.digest(job[0])
            except OSError:
                pass
            return job[1]

        total = sum(size for _, size in todo)
        with (
            tqdm(
                total=total,
                desc=f"{desc} ({len(todo)} files)",
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=not self.progress,
            ) as bar,
            ThreadPoolExecutor(max_workers=min(self.threads, len(todo))) as pool,
        ):
            for size in pool.map(one, todo):
                bar.update(size)
        return len(todo)

    # ------------------------------------------------------------------ the store

    def _read_store(self) -> dict[str, tuple[Signature, str]]:
        assert self.store is not None
        try:
            data = json.loads(self.store.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            logger.warning("file hashes: unreadable %s (%s); hashing files again", self.store, err)
            return {}
        if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
            logger.warning("file hashes: %s has another format; hashing files again", self.store)
            return {}
        entries = {}
        for key, row in (data.get("entries") or {}).items():
            if (
                isinstance(row, list)
                and len(row) == 5
                and all(isinstance(v, int) for v in row[:4])
                and isinstance(row[4], str)
                and len(row[4]) == 64
            ):
                entries[key] = (tuple(row[:4]), row[4])
        return entries

    def save(self) -> None:
        """Merge this process's new entries into the store (under its lock, atomically); drop
        entries whose file is gone or changed. A lock that stays busy skips the write (the store
        only saves time) with a warning, and so does a write that fails (a full disk): the
        memo of this run is unaffected."""
        if self.store is None:
            return
        with self._lock:
            new = dict(self._unsaved)
        if not new:
            return
        from filelock import FileLock, Timeout

        try:
            with FileLock(str(self.store) + ".lock", timeout=_LOCK_TIMEOUT_S):
                entries = self._read_store()
                entries.update(new)
                kept = {}
                for key, (signature, value) in entries.items():
                    try:
                        if _signature(os.stat(key)) == signature:
                            kept[key] = [*signature, value]
                    except OSError:
                        continue
                write_json_atomic(self.store, {"format": STORE_FORMAT, "entries": kept})
        except Timeout:
            logger.warning("file hashes: %s.lock stayed busy; new hashes not kept", self.store)
            return
        except OSError as err:
            logger.warning("file hashes: cannot write %s (%s); hashes not kept", self.store, err)
            return
        with self._lock:
            for key in new:
                self._unsaved.pop(key, None)
