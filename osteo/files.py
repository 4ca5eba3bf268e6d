"""Atomic file writes: a reader (another rank, process or a later run) sees a complete file or
none, never half of one, and a crash leaves the old file in place.

Every file osteo writes that another step reads back (caches, run-folder tables, JSON) goes
through these helpers: data to a uniquely named temporary file in the destination folder,
``fsync`` so the bytes are on disk before the name points at them, then ``os.replace`` (atomic
within one file system). Unique temporary names keep concurrent writers of one path apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_path",
    "atomic_open",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
]


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    For writers that insist on a file name of their own (SimpleITK, ``np.savez``, ``torch.save``):
    give them the yielded path. ``suffix`` keeps the extension a writer may choose its format by.
    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())  # the bytes are on disk before the name points at them
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """``open(path, mode)`` that publishes the file only when the ``with`` block succeeds."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as temporary:
        with open(temporary, mode, encoding=None if "b" in mode else encoding) as stream:
            yield stream
            stream.flush()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as stream:
        stream.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_open(path, "w") as stream:
        stream.write(text)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """JSON with a trailing newline; values JSON cannot hold are written with ``str``."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, default=str) + "\n")
