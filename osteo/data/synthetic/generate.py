"""Generate a synthetic cohort folder: images, masks, manifest, readers, latent table, summary.

Folder layout (docs/architecture.md):

    manifest.csv   study_id, patient_id, image_path, study_date, site, age, sex, weight,
                   tscore, mask_path, label          (what a real site would provide)
    images/<study_id>.dcm|.png
    masks/<study_id>.png                            (0 background, 1 right femur, 2 left)
    readers.csv    study_id, reader, score           (external test studies, scores 1-5)
    latent.csv     every latent parameter and the reference geometry (never read by training)
    cohort.json    preset, seed, counts, prevalence and oracle AUC per cohort

The manifest is written last, so an interrupted run leaves no manifest and is simply redone.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .anatomy import CORTEX_ROI_MM, NECK_ROI_MM
from .presets import COHORTS, SITES, Preset, get_preset
from .readers import READERS
from .table import REPEAT_FRACTION, SWAP_SOURCE, SWAP_TARGET, sample_cohort_table

__all__ = ["IMAGE_FORMATS", "MANIFEST_COLUMNS", "cohort_summary", "generate_cohort"]

from osteo.data.manifest import REQUIRED_COLUMNS  # noqa: E402
from osteo.files import atomic_open, write_text_atomic  # noqa: E402

IMAGE_FORMATS = {"dicom": ".dcm", "png": ".png"}
# The manifest contract lives in osteo.data.manifest; the generator writes exactly it.
MANIFEST_COLUMNS = (*REQUIRED_COLUMNS, "mask_path", "label")
# 2: physical scale (sites in mm, any spacing), per-hip cues, systemic bone (pelvis_density).
# (Sites' motion_blur_mm, 0 by default, renders version 2's images; latent.csv records it.)
GENERATOR_VERSION = 2


def study_spacing(site: str, spacing_mm: float | None, fullres: bool) -> float | None:
    """The spacing a study of ``site`` is rendered at: native, the one asked for, or None
    (the site's archive spacing)."""
    if fullres:
        return SITES[site].native_spacing_mm
    return spacing_mm


def spacing_label(spacing_mm: float | None, fullres: bool) -> str:
    """How cohort.json names the spacing choice: archive, native, or the value in mm."""
    if fullres:
        return "native"
    return "archive" if spacing_mm is None else f"{float(spacing_mm):g}"


def _render_and_write(
    task: tuple[dict[str, Any], str, str, str, int, float | None],
) -> dict[str, float]:
    """Worker: render one study, write its image and mask, return its reference geometry."""
    from .render import render_study
    from .writers import write_dicom, write_mask_png, write_png

    study, image_path, mask_path, image_format, seed, spacing_mm = task
    rendered = render_study(study, spacing_mm)
    if image_format == "dicom":
        write_dicom(Path(image_path), rendered.stored, rendered.site, study, seed)
    else:
        write_png(Path(image_path), rendered.stored, rendered.site)
    write_mask_png(Path(mask_path), rendered.mask, rendered.site.spacing_mm)
    return rendered.geometry


def _keep_freed_memory() -> None:
    """Worker initialiser: let glibc reuse freed image buffers instead of returning them.

    A render allocates a few dozen float32 images; above glibc's default threshold each is a
    fresh mmap whose pages fault in one by one (measured: ~8,600 page faults and ~19 ms of
    system time per archive-spacing study, a quarter of the render). Keeping buffers up to
    64 MB on the heap (and up to 256 MB of free heap before trimming) removes that. Only in
    the generator's own worker processes; elsewhere (other C libraries) nothing changes.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 64 * 2**20)  # M_MMAP_THRESHOLD
    mallopt(-1, 256 * 2**20)  # M_TRIM_THRESHOLD


def _map(tasks: list, workers: int) -> Iterator[dict[str, float]]:
    if workers <= 1:
        yield from map(_render_and_write, tasks)
        return
    # "spawn": workers start clean even when the caller has torch or OpenMP threads running.
    context = multiprocessing.get_context("spawn")
    chunk = max(1, min(16, len(tasks) // (workers * 8)))
    with context.Pool(workers, initializer=_keep_freed_memory) as pool:
        yield from pool.imap(_render_and_write, tasks, chunksize=chunk)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    labels = np.asarray(labels, dtype=int)
    if labels.min(initial=1) == labels.max(initial=0):
        return None
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(labels, scores)), 4)


def cohort_summary(
    table: pd.DataFrame,
    preset: Preset,
    seed: int,
    image_format: str,
    spacing_mm: float | None = None,
    fullres: bool = False,
    site_swap: bool = False,
) -> dict:
    """Counts, prevalence and the ceilings (oracle AUCs) per cohort, from the latent table."""
    cohorts: dict[str, dict[str, Any]] = {}
    for name in preset.n_studies:
        part = table[table["cohort"] == name]
        # A swapped cohort keeps its source cohort's dates (the same studies).
        spec = COHORTS[SWAP_SOURCE if site_swap and name == SWAP_TARGET else name]
        per_patient = part.groupby("patient_id").size()
        label = part["label"].to_numpy()
        entry: dict[str, Any] = {
            "site": str(part["site"].iloc[0]) if len(part) else COHORTS[name].site,
            "date_from": spec.date_from,
            "date_to": spec.date_to,
            "studies": int(len(part)),
            "patients": int(len(per_patient)),
            "patients_with_repeats": round(float((per_patient > 1).mean()), 4),
            "positives": int(label.sum()),
            "prevalence": round(float(label.mean()), 4),
            "female_fraction": round(float((part["sex"] == "F").mean()), 4),
            "age_mean": round(float(part["age"].mean()), 2),
            "oracle_auc": _auc(label, part["oracle_probability"]),
            "oracle_auc_image_only": _auc(label, part["oracle_image_score"]),
            "oracle_auc_clinical_only": _auc(label, part["clinical_probability"]),
        }
        if site_swap and name == SWAP_TARGET:
            entry["swap_of"] = SWAP_SOURCE
        if name == "external_test":
            entry["reader_auc"] = {r.name: _auc(label, part[f"{r.name}_score"]) for r in READERS}
        cohorts[name] = entry
    return {
        "generator": "osteo.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "preset": preset.name,
        "seed": int(seed),
        "site_swap": bool(site_swap),
        "format": image_format,
        "spacing": spacing_label(spacing_mm, fullres),
        "studies": int(len(table)),
        "patients": int(table["patient_id"].nunique()),
        "target_repeat_fraction": round(REPEAT_FRACTION, 4),
        "oracle_auc": {name: entry["oracle_auc"] for name, entry in cohorts.items()},
        "cohorts": cohorts,
        "roi_mm": {"neck": NECK_ROI_MM, "cortex": CORTEX_ROI_MM},
        "sites": {
            name: {
                "modality": site.modality,
                "photometric": site.photometric,
                "rows": site.shape[0],
                "columns": site.shape[1],
                "spacing_mm": site.spacing_mm,
                "native_spacing_mm": site.native_spacing_mm,
                "archive_spacing_mm": site.archive_spacing_mm,
                "field_of_view_mm": list(site.field_of_view_mm),
                "bits_stored": site.bits_stored,
            }
            for name, site in (
                (n, s.at_spacing(study_spacing(n, spacing_mm, fullres))) for n, s in SITES.items()
            )
        },
    }


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_open(path) as stream:
        frame.to_csv(stream, index=False, float_format="%.6g")


def _manifest(table: pd.DataFrame, suffix: str) -> pd.DataFrame:
    """What a hospital would export: rounded clinical values, reported T-score, paths."""
    return pd.DataFrame(
        {
            "study_id": table["study_id"],
            "patient_id": table["patient_id"],
            "image_path": [f"images/{s}{suffix}" for s in table["study_id"]],
            "study_date": table["study_date"],
            "site": table["site"],
            "age": np.floor(table["age"]).astype(int),
            "sex": table["sex"],
            "weight": table["weight"].round(1),
            "tscore": table["tscore"].round(1),
            "mask_path": [f"masks/{s}.png" for s in table["study_id"]],
            "label": table["label"].astype(int),
        },
        columns=list(MANIFEST_COLUMNS),
    )


def _readers(table: pd.DataFrame) -> pd.DataFrame:
    external = table[table["cohort"] == "external_test"]
    rows = [
        {"study_id": s, "reader": r.name, "score": int(score)}
        for r in READERS
        for s, score in zip(external["study_id"], external[f"{r.name}_score"], strict=True)
    ]
    return pd.DataFrame(rows, columns=["study_id", "reader", "score"])


def generate_cohort(
    out_dir: str | Path,
    preset: str = "default",
    seed: int = 0,
    n_studies: int | None = None,
    image_format: str = "dicom",
    workers: int = 2,
    progress: bool = True,
    spacing_mm: float | None = None,
    fullres: bool = False,
    site_swap: bool = False,
) -> dict:
    """Write a synthetic cohort into ``out_dir`` and return its summary (cohort.json).

    Images are rendered directly at each site's archive spacing, or at ``spacing_mm``
    (0.1-1.5 mm, both sites), or with ``fullres`` at each site's native detector spacing.
    Deterministic for ``(preset, seed, n_studies, image_format, spacing, site_swap)`` whatever
    ``workers`` is: every random draw is made up front or from the study's own seed.
    ``site_swap=True``: the external test studies are the internal test studies rendered at
    site B (``sample_cohort_table``; ``latent.csv`` pairs them in ``swap_of``).
    """
    if fullres and spacing_mm is not None:
        raise ValueError("give either spacing_mm or fullres, not both")
    if spacing_mm is not None:
        for site in SITES.values():
            site.at_spacing(spacing_mm)  # refuses a spacing outside 0.1-1.5 mm
    if image_format not in IMAGE_FORMATS:
        raise ValueError(
            f"unknown format '{image_format}'; expected one of {', '.join(IMAGE_FORMATS)}"
        )
    spec = get_preset(preset, n_studies)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.csv"
    if manifest_path.exists():
        manifest_path.unlink()  # a half-rewritten folder must not look complete

    table = sample_cohort_table(spec, seed, site_swap=site_swap)
    suffix = IMAGE_FORMATS[image_format]
    records = table.to_dict("records")
    tasks = [
        (
            rec,
            str(out / "images" / f"{rec['study_id']}{suffix}"),
            str(out / "masks" / f"{rec['study_id']}.png"),
            image_format,
            seed,
            study_spacing(str(rec["site"]), spacing_mm, fullres),
        )
        for rec in records
    ]
    results = _map(tasks, max(1, int(workers)))
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(tasks), desc=f"synthetic {spec.name}", unit="study")
    geometry = pd.DataFrame(list(results))

    latent = pd.concat([table.reset_index(drop=True), geometry.reset_index(drop=True)], axis=1)
    _write_csv(latent, out / "latent.csv")
    _write_csv(_readers(table), out / "readers.csv")
    summary = cohort_summary(table, spec, seed, image_format, spacing_mm, fullres, site_swap)
    write_text_atomic(out / "cohort.json", json.dumps(summary, indent=2) + "\n")
    _write_csv(_manifest(table, suffix), manifest_path)
    return summary
