"""Installed versions of the libraries a result depends on, as their distributions report them."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

__all__ = ["library_versions"]


def library_versions(distributions: Iterable[str], missing: str = "absent") -> dict[str, str]:
    """``{"python": ..., <distribution>: <version> or missing}`` in the order given.

    Distribution names, not import names (``pyradiomics-bhklab``, not ``radiomics``): that is
    what pip installs and what a reader of ``stages.json`` or a TRIPOD section looks up.
    """
    versions = {"python": platform.python_version()}
    for name in distributions:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = missing
    return versions
