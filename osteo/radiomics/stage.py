"""Stage 4: radiomics texture features of the four ROIs of every study, from the store.

Runs only when the head uses texture. The feature store (``cache/radiomics/``) is keyed per
study by the image, the mask, the boxes, the parameter file and the library versions, so a
rerun, or another head, reuses every entry; failed ROIs are recorded with their reasons. The
stage's figures record the radiomics spacing (``spacing_mm``) the parameter file set.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from osteo.data.stage import CohortData
from osteo.hashing import digest
from osteo.pipeline.context import RunContext
from osteo.pipeline.distributed import distributed_rank_and_size, gather_from_ranks
from osteo.roi.stage import RoiOutput
from osteo.segmentation.stage import SegmentationOutput

__all__ = ["run_radiomics_stage", "study_items", "build_feature_store"]


def build_feature_store(ctx: RunContext):
    from osteo.radiomics.extractor import RadiomicsExtractor
    from osteo.radiomics.store import FeatureStore

    params = Path(ctx.cfg.radiomics.params)
    if not params.is_file():
        raise FileNotFoundError(f"radiomics.params {params} does not exist")
    return FeatureStore(ctx.cache_dir / "radiomics", RadiomicsExtractor(params))


def study_items(data: CohortData, seg: SegmentationOutput, rois: RoiOutput, study_ids, hashes=None):
    """The store's items of ``study_ids``; with ``hashes`` (the run's ``FileHashes``) each
    carries its image and mask digests from the run's memo, so the store reads no file to key
    it. A file that cannot be hashed keeps no digest: the store's own hashing reports it."""
    from osteo.radiomics.store import StudyItem

    rows = data.manifest.set_index("study_id")
    images = {s: Path(rows.at[s, "image_path"]) for s in study_ids}
    if hashes is not None:
        hashes.prime(images.values(), desc="hashing images")
        hashes.prime([seg.masks[s] for s in study_ids if s in seg.masks], desc="hashing masks")

    def known(path):
        if hashes is None or path is None:
            return None
        try:
            return hashes.digest(path)
        except OSError:
            return None

    items = []
    for study_id in study_ids:
        result = rois.rois.get(study_id)
        boxes = result.boxes() if result is not None else {}
        mask_path = seg.masks.get(study_id)
        items.append(
            StudyItem(
                study_id=study_id,
                image_path=images[study_id],
                boxes=boxes,
                mask_path=mask_path,
                image_digest=known(images[study_id]),
                mask_digest=known(mask_path),
            )
        )
    return items


def run_radiomics_stage(
    ctx: RunContext,
    data: CohortData,
    seg: SegmentationOutput,
    rois: RoiOutput,
    study_ids: list[str],
    needed: bool,
):
    """The FeatureTable of ``study_ids`` (NaN where a ROI failed), or None when not needed."""
    from osteo.radiomics.parallel import extract_many

    with ctx.stage("radiomics") as record:
        if not needed:
            record.status = "skipped"
            record.note = f"head {ctx.cfg.model.head!r} does not use texture"
            return None
        store = build_feature_store(ctx)
        items = study_items(data, seg, rois, study_ids, hashes=ctx.hashes)
        progress = ctx.cfg.trainer.enable_progress_bar
        rank, world = distributed_rank_and_size()
        extracted_by_rank = []
        if world > 1:
            # Each rank fills its share of the shared store, then everyone reads all of it.
            share = extract_many(
                items[rank::world],
                store,
                workers=ctx.cfg.radiomics.workers,
                progress=progress and rank == 0,
            )
            extracted_by_rank = gather_from_ranks(share.n_extracted)
        result = extract_many(items, store, workers=ctx.cfg.radiomics.workers, progress=progress)
        n_extracted = result.n_extracted + sum(extracted_by_rank)
        record.status = "ran" if n_extracted else "reused"
        record.cache_key = digest(store.extractor.fingerprint_digest, len(items))
        record.figures = result.stage_figures()
        # stages.json lies in the run folder: reasons lose the study's ids and paths.
        reasons = Counter(ctx.identifiers.message(f.reason, f.study_id) for f in result.failures)
        record.figures["failures_by_reason"] = dict(reasons.most_common())
        if extracted_by_rank:
            # The last pass found every entry in the store: the ranks had just made them.
            record.figures["n_extracted"] = n_extracted
            record.figures["n_from_cache"] = result.n_from_cache - sum(extracted_by_rank)
            record.figures["extracted_by_rank"] = extracted_by_rank
        record.figures["n_features"] = store.n_features
        # The radiomics spacing (the parameter file's resampledPixelSpacing, row x column mm;
        # None: each image's own spacing), so a run says at which resolution texture was read.
        spacing = store.extractor.spacing_mm
        record.figures["spacing_mm"] = list(spacing) if spacing is not None else None
        if result.worker_peak_rss_mb is not None:  # forkserver workers: getrusage misses them
            record.children_peak_rss_mb = result.worker_peak_rss_mb
        return result.table
