"""One run name per parameter set, so the runs of a sweep never share a run folder.

``tools/fit.py --name-from-overrides`` (what a W&B agent runs) and ``tools/sweep.py local``
both call :func:`name_from_overrides` on the same ``key=value`` words, so a run has the same
name (and folder) whichever way it was started. Settings that decide where files go or how a
run is shown and logged (``output_dir``, ``cache_dir``, ``logger.*``, ...) do not name it: the
same model trained with W&B online or offline is the same run.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["name_from_overrides", "split_override", "NAME_NEUTRAL_KEYS"]

NAME_NEUTRAL_KEYS = ("name", "output_dir", "cache_dir", "resume", "trainer.enable_progress_bar")
NAME_NEUTRAL_PREFIXES = ("logger.",)
MAX_NAME_LENGTH = 96
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


def split_override(override: str) -> tuple[str, str]:
    """``"model.head=deep"`` -> ``("model.head", "deep")``."""
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"Override '{override}' is not of the form key=value")
    return key.strip(), value.strip()


def _names_run(key: str) -> bool:
    return key not in NAME_NEUTRAL_KEYS and not key.startswith(NAME_NEUTRAL_PREFIXES)


def _short_value(value: str) -> tuple[str, bool]:
    """A file-name-safe form of a value, and whether it lost information."""
    text = value
    lossy = False
    if _FLOAT.match(value) and not value.lstrip("+-").isdigit() and len(value) > 8:
        text = format(float(value), ".4g")  # 0.00031622776601683794 -> 0.0003162
        lossy = True
    safe = _UNSAFE.sub("_", text).strip("_") or "_"
    return safe, lossy or safe != text


def name_from_overrides(base: str, overrides: list[str]) -> str:
    """``base`` plus ``__key-value`` for each override that changes the result.

    Keys are shortened to their last part (``model.head`` -> ``head``) unless two overrides
    share it. When a value had to be shortened or made file-safe, or the name grew too long,
    a hash of the exact overrides keeps names of different parameter sets apart.
    """
    pairs = sorted({k: v for k, v in map(split_override, overrides) if _names_run(k)}.items())
    if not pairs:
        return base
    last = [k.rsplit(".", 1)[-1] for k, _ in pairs]
    parts, lossy = [], False
    for (key, value), short in zip(pairs, last, strict=True):
        label = short if last.count(short) == 1 else key
        text, changed = _short_value(value)
        lossy |= changed
        parts.append(f"{label}-{text}")
    name = "__".join([base, *parts])
    if lossy or len(name) > MAX_NAME_LENGTH:
        exact = "\n".join(f"{k}={v}" for k, v in pairs)
        tag = hashlib.sha256(exact.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME_LENGTH - 9]}-{tag}"
    return name
