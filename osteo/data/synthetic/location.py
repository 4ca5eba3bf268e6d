"""Where the main command keeps a synthetic cohort, and whether a folder holds the one asked for.

Each (preset, seed, format, size, spacing) gets its own folder under ``data.synthetic.root``
(``data/synthetic/tiny-seed0-dicom/``), so asking for another preset makes that cohort next to
the old one instead of silently reusing it. A manifest given explicitly (``data.manifest``) is
used as it is; when its folder holds a synthetic cohort made with other settings than
``data.synthetic.*``, :func:`cohort_mismatch` says so in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

# The folder naming lives with the config, which fills in data.manifest from it.
from osteo.config import cohort_folder_name, synthetic_manifest_path

__all__ = [
    "cohort_folder_name",
    "synthetic_manifest_path",
    "cohort_mismatch",
    "made_by_older_generator",
]


def _generator_summary(manifest: str | Path) -> dict | None:
    """The ``cohort.json`` beside ``manifest`` when osteo's generator wrote it, else None."""
    try:
        summary = json.loads((Path(manifest).parent / "cohort.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("generator") != "osteo.data.synthetic":
        return None
    return summary


def made_by_older_generator(manifest: str | Path, synthetic) -> bool:
    """Whether ``manifest`` is the configured synthetic cohort's own folder (the path
    ``data.synthetic`` names) holding a cohort of an older generator version: one to make
    again. A manifest the user chose elsewhere is used as it is (``cohort_mismatch`` says so)."""
    from .generate import GENERATOR_VERSION

    own = synthetic_manifest_path(synthetic.root, synthetic)
    if Path(manifest).resolve() != own.resolve():
        return False
    summary = _generator_summary(manifest)
    version = summary.get("generator_version") if summary else None
    return isinstance(version, int) and version < GENERATOR_VERSION


def cohort_mismatch(manifest: str | Path, synthetic) -> str | None:
    """One line when ``manifest``'s folder holds a synthetic cohort other than ``synthetic``.

    None when the folder has no ``cohort.json`` of osteo's generator (the user's own data) or
    when preset, seed, format, spacing and size all agree.
    """
    summary_path = Path(manifest).parent / "cohort.json"
    summary = _generator_summary(manifest)
    if summary is None:
        return None
    wanted = {"preset": synthetic.preset, "seed": int(synthetic.seed), "format": synthetic.format}
    found = {k: summary.get(k) for k in wanted}
    differs = [f"{k} {found[k]} (config: {wanted[k]})" for k in wanted if found[k] != wanted[k]]
    from .generate import GENERATOR_VERSION, spacing_label

    spacing = spacing_label(synthetic.spacing_mm, bool(synthetic.fullres))
    if summary.get("spacing", "archive") != spacing:
        differs.append(f"spacing {summary.get('spacing', 'archive')} (config: {spacing})")
    if bool(summary.get("site_swap", False)) != bool(synthetic.site_swap):
        differs.append(
            f"site_swap {bool(summary.get('site_swap', False))} "
            f"(config: {bool(synthetic.site_swap)})"
        )
    if summary.get("generator_version") != GENERATOR_VERSION:
        differs.append(
            f"generator version {summary.get('generator_version')} (this osteo writes "
            f"{GENERATOR_VERSION})"
        )
    if synthetic.n_studies is not None and summary.get("studies") != synthetic.n_studies:
        differs.append(f"{summary.get('studies')} studies (config: {synthetic.n_studies})")
    if not differs:
        return None
    return (
        f"{summary_path.parent} holds a synthetic cohort made with {', '.join(differs)}; "
        "it is used as data.manifest says (drop data.manifest to get the configured cohort)"
    )
