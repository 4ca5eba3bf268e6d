"""Stage 3: ROI boxes for every study from its predicted femur mask, with quality flags.

Results are cached per mask (``cache/roi/<key>.json``, key = mask digest + ROI settings), so
a rerun or another run on the same masks reuses them. The run folder gets ``rois.csv`` (one
row per study, side and ROI) and a contact sheet per split for quality review.
"""

from __future__ import annotations

import json
import re
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from osteo.data.masks import read_label_map
from osteo.data.stage import CohortData
from osteo.files import write_json_atomic, write_text_atomic
from osteo.hashing import digest
from osteo.pipeline.context import RunContext
from osteo.pipeline.distributed import is_global_zero
from osteo.roi.geometry import (
    FEMUR_LABELS,
    ROI_ALGORITHM_VERSION,
    ROI_NAMES,
    SIDES,
    HipRois,
    RoiResult,
    RoiSettings,
    box_inside_mask,
    box_iou,
    place_rois,
)
from osteo.segmentation.stage import SegmentationOutput

__all__ = ["RoiOutput", "run_roi_stage", "roi_settings_from_config", "load_reference_boxes"]


@dataclass
class RoiOutput:
    rois: dict[str, RoiResult]  # study_id -> boxes and flags (studies with a mask)
    table: pd.DataFrame  # the rows of rois.csv


def roi_settings_from_config(cfg) -> RoiSettings:
    """``RoiSettings`` from the config's ``roi`` section: every setting the section names (the
    section also holds run options such as ``overlays``; the rest keep their defaults)."""
    section = cfg.roi
    return RoiSettings(
        **{f.name: getattr(section, f.name) for f in fields(RoiSettings) if f.name in section}
    )


def _result_to_json(result: RoiResult) -> dict:
    return {side: asdict(hip) for side, hip in result.hips.items()}


def _result_from_json(data: dict) -> RoiResult:
    hips = {}
    for side, hip in data.items():
        boxes = {k: tuple(v) for k, v in hip["boxes"].items()}
        hips[side] = HipRois(
            side=side,
            boxes=boxes,
            head_centre=tuple(hip["head_centre"]) if hip["head_centre"] else None,
            head_radius_mm=hip["head_radius_mm"],
            neck_axis=tuple(tuple(p) for p in hip["neck_axis"]) if hip["neck_axis"] else None,
            shaft_axis=tuple(tuple(p) for p in hip["shaft_axis"]) if hip["shaft_axis"] else None,
            flags=list(hip["flags"]),
            notes=list(hip.get("notes", [])),
        )
    return RoiResult(hips)


def _cached(cache_path: Path) -> dict | None:
    """A cache entry, or None (a miss) when it is absent, truncated or not an ROI result."""
    if not cache_path.is_file():
        return None
    try:
        data = json.loads(cache_path.read_text(encoding="utf-8"))
        _result_from_json(data)  # every field there and of the right shape
        return data
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        warnings.warn(
            f"ROI cache entry {cache_path} is unreadable ({type(err).__name__}: {err}); "
            "placing the ROIs again",
            UserWarning,
            stacklevel=2,
        )
        return None


def _place_one(args: tuple[str, str, RoiSettings, str]) -> tuple[str, dict]:
    study_id, mask_path, settings, cache_file = args
    cache_path = Path(cache_file)
    cached = _cached(cache_path)
    if cached is not None:
        return study_id, cached
    label_map, spacing = read_label_map(Path(mask_path))
    data = _result_to_json(place_rois(label_map, spacing, settings))
    write_json_atomic(cache_path, data)
    return study_id, data


def load_reference_boxes(manifest_path: Path) -> dict[tuple[str, str, str], tuple] | None:
    """Reference boxes of a synthetic cohort (``latent.csv`` beside its manifest), if any.

    Only used to score ROI placement; never read by any training stage.
    """
    latent = manifest_path.parent / "latent.csv"
    if not latent.is_file():
        return None
    table = pd.read_csv(latent)
    boxes = {}
    for side in SIDES:
        for roi in ROI_NAMES:
            cols = [f"{side}_{roi}_roi_{k}" for k in ("r0", "c0", "r1", "c1")]
            if not set(cols) <= set(table.columns):
                return None
            for study_id, *box in table[["study_id", *cols]].itertuples(index=False):
                boxes[(str(study_id), side, roi)] = tuple(int(v) for v in box)
    return boxes


def _quality_figures(
    data: CohortData, rois: dict[str, RoiResult], masks: dict[str, Path], reference: dict | None
) -> dict:
    figures: dict = {"studies": len(rois)}
    ok = [s for s, r in rois.items() if r.ok]
    figures["studies_with_all_boxes"] = len(ok)
    figures["fraction_with_all_boxes"] = round(len(ok) / max(1, len(rois)), 4)
    # Group flags by their reason, not their numbers ("radius 8.0 mm" and "9.2 mm" alike).
    reasons = pd.Series(
        [re.sub(r"\d+(\.\d+)?", "#", f.split(": ", 1)[1]) for r in rois.values() for f in r.flags],
        dtype=object,
    )
    figures["flags"] = reasons.value_counts().to_dict() if len(reasons) else {}
    # Boxes placed by a fallback rule (e.g. a lesser trochanter the mask does not show).
    notes = pd.Series([n.split(": ", 1)[1] for r in rois.values() for n in r.notes], dtype=object)
    figures["notes"] = notes.value_counts().to_dict() if len(notes) else {}

    truth = dict(zip(data.manifest["study_id"], data.manifest["mask_path"], strict=True))
    inside, ious = [], {name: [] for name in ROI_NAMES}
    for study_id, result in rois.items():
        mask_path = truth.get(study_id) or masks.get(study_id)
        if mask_path is None:
            continue
        label_map, _ = read_label_map(Path(mask_path))
        for side, hip in result.hips.items():
            femur = label_map == FEMUR_LABELS[side]
            # The cortex box covers the bone edge by design: it must be mostly bone.
            inside.append(
                all(
                    name in hip.boxes
                    and box_inside_mask(hip.boxes[name], femur, 1.0 if name == "neck" else 0.5)
                    for name in ROI_NAMES
                )
            )
            if reference is not None:
                for name in ROI_NAMES:
                    ref = reference.get((study_id, side, name))
                    if ref is not None:
                        ious[name].append(
                            box_iou(hip.boxes[name], ref) if name in hip.boxes else 0.0
                        )
    if inside:
        figures["fraction_hips_boxes_inside_femur"] = round(float(np.mean(inside)), 4)
    if reference is not None:
        figures["iou_with_reference"] = {
            name: round(float(np.mean(v)), 4) for name, v in ious.items() if v
        }
    return figures


def _write_table(
    ctx: RunContext, filename: str, rois: dict[str, RoiResult], write: bool = True
) -> pd.DataFrame:
    rows = []
    for study_id, result in rois.items():
        for side, hip in result.hips.items():
            for name in ROI_NAMES:
                box = hip.boxes.get(name)
                rows.append(
                    {
                        "study_id": study_id,
                        "side": side,
                        "roi": name,
                        "row0": box[0] if box else None,
                        "col0": box[1] if box else None,
                        "row1": box[2] if box else None,
                        "col1": box[3] if box else None,
                        "flags": "; ".join(hip.flags),
                        "notes": "; ".join(hip.notes),
                    }
                )
    table = pd.DataFrame(rows)
    if write:
        ctx.write_study_table(table, filename, text_columns=("flags", "notes"))
    return table


# Part of the contact sheets' stamp: bump it when what a sheet shows changes.
CONTACT_SHEET_VERSION = 1
CONTACT_SHEETS_STAMP = "contact_sheets.key"


def _contact_sheets(
    ctx: RunContext,
    data: CohortData,
    rois: dict[str, RoiResult],
    masks: dict[str, Path],
    per_split: int = 24,
) -> None:
    """``overlays/rois_<split>.png``: the first ``per_split`` studies of each split, flagged
    ones first. Drawn again only when what they show changed: a warm run of the same run
    folder finds them with their stamp (the studies drawn, their image and mask digests, the
    boxes) and keeps them (drawing is most of a warm run's ROI stage)."""
    from osteo.data.io import read_radiograph
    from osteo.roi.overlay import save_contact_sheet

    folder = ctx.run_dir / "overlays"
    selected = {}
    for split, part in data.manifest.groupby("split"):
        ids = [s for s in part["study_id"] if s in rois]
        # Flagged studies first: they are the ones a reviewer must see.
        ids = sorted(ids, key=lambda s: rois[s].ok)[:per_split]
        if ids:
            paths = part.set_index("study_id")["image_path"]
            selected[str(split)] = [(s, paths[s]) for s in ids]
    stamp = digest(
        {
            split: [
                (ctx.hashes.digest(image), ctx.hashes.digest(masks[s]), _result_to_json(rois[s]))
                for s, image in studies
            ]
            for split, studies in selected.items()
        },
        CONTACT_SHEET_VERSION,
        ROI_ALGORITHM_VERSION,
    )
    stamp_path = folder / CONTACT_SHEETS_STAMP
    sheets = [folder / f"rois_{split}.png" for split in selected]
    if (
        stamp_path.is_file()
        and stamp_path.read_text().strip() == stamp
        and all(p.is_file() for p in sheets)
    ):
        return
    stamp_path.unlink(missing_ok=True)  # a sheet drawn below and a stale stamp never meet
    for split, studies in selected.items():
        items = []
        for index, (study_id, image_path) in enumerate(studies):
            pixels = read_radiograph(image_path).pixels
            label_map, _ = read_label_map(masks[study_id])
            # Titles are positions, not study ids: review images carry no identifiers.
            items.append((f"{split} #{index + 1}", pixels, label_map, rois[study_id]))
        save_contact_sheet(folder / f"rois_{split}.png", items)
    write_text_atomic(stamp_path, stamp + "\n")


def _per_study_overlays(
    ctx: RunContext, data: CohortData, rois: dict[str, RoiResult], masks: dict[str, Path]
) -> None:
    from osteo.data.io import read_radiograph
    from osteo.data.manifest import hash_identifier
    from osteo.roi.overlay import save_overlay

    for row in data.manifest.itertuples(index=False):
        if row.study_id not in rois:
            continue
        label_map, _ = read_label_map(masks[row.study_id])
        name = hash_identifier(row.study_id, "study")  # file names carry no identifiers
        save_overlay(
            ctx.run_dir / "overlays" / row.split / f"{name}.png",
            read_radiograph(row.image_path).pixels,
            label_map,
            rois[row.study_id],
            title=f"{row.split} {name}",
        )


def run_roi_stage(ctx: RunContext, data: CohortData, seg: SegmentationOutput) -> RoiOutput:
    settings = roi_settings_from_config(ctx.cfg)
    with ctx.stage("roi") as record:
        jobs = []
        ctx.hashes.prime(seg.masks.values(), desc="hashing masks")
        for study_id, mask_path in seg.masks.items():
            key = digest(ctx.hashes.digest(mask_path), asdict(settings), ROI_ALGORITHM_VERSION)
            jobs.append(
                (
                    study_id,
                    str(mask_path),
                    settings,
                    str(ctx.cache_dir / "roi" / key[:2] / f"{key}.json"),
                )
            )
        hits = sum(Path(j[3]).is_file() for j in jobs)
        workers = max(1, int(ctx.cfg.roi.workers))
        progress = ctx.cfg.trainer.enable_progress_bar
        results: dict[str, RoiResult] = {}
        if workers > 1 and len(jobs) - hits > 50:
            with ProcessPoolExecutor(workers) as pool:
                iterator = pool.map(_place_one, jobs, chunksize=16)
                for study_id, raw in tqdm(
                    iterator, total=len(jobs), desc="ROIs", disable=not progress
                ):
                    results[study_id] = _result_from_json(raw)
        else:
            for job in tqdm(jobs, desc="ROIs", disable=not progress):
                study_id, raw = _place_one(job)
                results[study_id] = _result_from_json(raw)
        record.status = "reused" if hits == len(jobs) else "ran"
        record.cache_key = digest(sorted(j[3] for j in jobs))
        table = _write_table(ctx, "rois.csv", results, write=is_global_zero())
        reference = load_reference_boxes(data.manifest_path)
        record.figures = _quality_figures(data, results, seg.masks, reference)
        record.figures["cache_hits"] = hits
        record.figures["segmentation_failures"] = len(seg.failures)
        # The run folder's files are rank zero's to write (the other ranks hold the same).
        if ctx.cfg.roi.overlays != "none" and is_global_zero():
            _contact_sheets(ctx, data, results, seg.masks)
        if ctx.cfg.roi.overlays == "per_study" and is_global_zero():
            _per_study_overlays(ctx, data, results, seg.masks)
        return RoiOutput(rois=results, table=table)
