"""Pseudonyms for patient and study identifiers: keyed hashes that cannot be reversed offline.

Every table, file name and log osteo writes names a study or patient by ``pseudonym(id)``:
HMAC-SHA256 under a secret key, cut to 16 hex digits. Without the key a pseudonym cannot be
turned back into an MRN or accession number by trying all candidates (an unkeyed hash of a
7-digit MRN falls in seconds); with it, the same id always gives the same pseudonym, so the
pipeline joins its own tables and the bootstrap groups studies by patient.

The key comes from, in order:

1. ``OSTEO_ID_KEY`` (any text; at least 16 characters), e.g. from a secrets manager;
2. the key file named by ``OSTEO_ID_KEY_FILE``, else ``$XDG_CONFIG_HOME/osteo/id_key``
   (``~/.config/osteo/id_key``): created on first use with 32 random bytes, mode 0600.

The key is never written into a run folder, a cache or W&B. Rotating it (docs/security.md)
changes every pseudonym from then on; old run folders keep the old ones.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import stat
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "IdentifierKeyError",
    "key_file_path",
    "identifier_key",
    "pseudonym",
    "reset_key_cache",
    "IdentifierPolicy",
    "redact",
]

KEY_ENV = "OSTEO_ID_KEY"
KEY_FILE_ENV = "OSTEO_ID_KEY_FILE"
MIN_KEY_CHARS = 16


class IdentifierKeyError(RuntimeError):
    """The pseudonym key is missing, too short or unreadable; the message says which."""


def key_file_path() -> Path:
    named = os.environ.get(KEY_FILE_ENV)
    if named:
        return Path(named).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "osteo" / "id_key"


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: two processes starting at once do not overwrite each other's key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@functools.lru_cache(maxsize=1)
def identifier_key() -> bytes:
    """The secret pseudonyms are keyed with (see the module docstring for where it lives)."""
    text = os.environ.get(KEY_ENV)
    if text is not None:
        if len(text) < MIN_KEY_CHARS:
            raise IdentifierKeyError(
                f"{KEY_ENV} holds {len(text)} characters; use at least {MIN_KEY_CHARS} "
                "random characters (e.g. from `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`)"
            )
        return text.encode()
    path = key_file_path()
    if not path.is_file():
        _create_key_file(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise IdentifierKeyError(f"cannot read the identifier key file {path}: {err}") from err
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            f"{path} is readable by other users (mode {stat.filemode(mode)}); "
            f"run `chmod 600 {path}`",
            UserWarning,
            stacklevel=2,
        )
    if len(text) < MIN_KEY_CHARS:
        raise IdentifierKeyError(
            f"the identifier key file {path} holds {len(text)} characters; expected at least "
            f"{MIN_KEY_CHARS} (delete it to have a new one made)"
        )
    return text.encode()


def reset_key_cache() -> None:
    """Forget the cached key (tests, or after rotating it in a long-lived process)."""
    identifier_key.cache_clear()


def pseudonym(value: object, kind: str = "id") -> str:
    """16 hex digits of HMAC-SHA256(key, ``kind:value``); ``kind`` keeps studies and patients
    with the same id apart (``"study"`` or ``"patient"``)."""
    message = f"{kind}:{str(value).strip()}".encode()
    return hmac.new(identifier_key(), message, hashlib.sha256).hexdigest()[:16]


def redact(text: str, secrets_: Iterable[str], placeholder: str = "<redacted>") -> str:
    """``text`` with every secret (longest first, so a path goes before its file name)
    replaced by ``placeholder``."""
    for secret in sorted({s for s in secrets_ if s and len(s) >= 2}, key=len, reverse=True):
        text = text.replace(secret, placeholder)
    return text


class IdentifierPolicy:
    """How a run names studies and patients in what it writes.

    ``clear=False`` (the default, ``logger.log_identifiers=false``): pseudonyms everywhere,
    and messages lose the study's ids, image and mask paths and the manifest's folder.
    ``clear=True``: ids as in the manifest (the user asked for them).
    """

    def __init__(self, clear: bool = False) -> None:
        self.clear = bool(clear)
        self._secrets: dict[str, tuple[str, ...]] = {}
        self._common: tuple[str, ...] = ()

    def learn(self, manifest, manifest_path: str | Path | None = None) -> None:
        """Remember each study's identifying strings (ids, paths, file names) for ``redact``."""
        common = []
        if manifest_path is not None:
            folder = Path(manifest_path).resolve().parent
            common += [str(folder), str(Path(manifest_path))]
        self._common = tuple(common)
        has_mask = "mask_path" in manifest.columns
        for row in manifest.to_dict("records"):
            found = [str(row["study_id"]), str(row["patient_id"])]
            for key in ("image_path", "mask_path") if has_mask else ("image_path",):
                value = row.get(key)
                if value is None or value != value:  # None or NaN
                    continue
                path = Path(str(value))
                found += [str(path), path.name, path.name.split(".")[0]]
            self._secrets[str(row["study_id"])] = tuple(found)

    def study(self, study_id: object) -> str:
        return str(study_id) if self.clear else pseudonym(study_id, "study")

    def patient(self, patient_id: object) -> str:
        return str(patient_id) if self.clear else pseudonym(patient_id, "patient")

    def message(self, text: str, study_id: object | None = None) -> str:
        """A failure message fit for the run folder: the study's identifiers redacted."""
        if self.clear:
            return str(text)
        secrets_ = list(self._common)
        if study_id is not None:
            secrets_ += self._secrets.get(str(study_id), (str(study_id),))
        return redact(str(text), secrets_, "<study>")


def _main(argv: list[str]) -> int:
    """``python -m osteo.privacy ID [ID ...]``: the pseudonyms of ids, to find a study in a run's
    tables (the key stays on this machine)."""
    if not argv:
        print("usage: python -m osteo.privacy ID [ID ...]", file=sys.stderr)
        return 2
    for value in argv:
        print(f"{value}\tstudy {pseudonym(value, 'study')}\tpatient {pseudonym(value, 'patient')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
