"""The plain-text summary printed at the end of a run."""

from __future__ import annotations

from osteo.constants import SPLITS, TEST_SPLITS
from osteo.pipeline.runner import RunResult

__all__ = ["format_run_summary"]


def _stage_highlights(name: str, figures: dict) -> str:
    if name == "data":
        parts = [f"{figures.get('studies', 0)} studies"]
        for split in SPLITS:
            if split in figures:
                f = figures[split]
                parts.append(f"{split} {f['studies']} ({f['positives']}+)")
        return ", ".join(parts)
    if name == "segmentation":
        dice = figures.get("dice", {})
        parts = [
            f"{split} Dice R/L {d['dice_right_mean']:.3f}/{d['dice_left_mean']:.3f}"
            for split, d in dice.items()
            if split in TEST_SPLITS
        ]
        parts.append(
            f"masks {figures.get('masks', 0)} ({figures.get('mask_cache_hits', 0)} cached)"
        )
        if figures.get("failures"):
            parts.append(f"{figures['failures']} failed")
        return ", ".join(parts)
    if name == "roi":
        parts = [f"all boxes {figures.get('fraction_with_all_boxes', 0):.1%}"]
        if "fraction_hips_boxes_inside_femur" in figures:
            parts.append(f"inside femur {figures['fraction_hips_boxes_inside_femur']:.1%}")
        for roi, iou in figures.get("iou_with_reference", {}).items():
            parts.append(f"IoU {roi} {iou:.2f}")
        flagged = sum(figures.get("flags", {}).values())
        if flagged:
            parts.append(f"{flagged} flags")
        noted = sum(figures.get("notes", {}).values())
        if noted:
            parts.append(f"{noted} notes (rois.csv)")
        return ", ".join(parts)
    if name == "radiomics" and figures:
        return (
            f"{figures.get('n_studies', 0)} studies x {figures.get('n_features', 0)} features, "
            f"{figures.get('n_from_cache', 0)} from the store, "
            f"{figures.get('n_failed_rois', 0)} failed ROIs"
        )
    if name == "classifier" and figures:
        parts = [f"head {figures.get('head')}"]
        if "epochs" in figures:
            parts.append(f"{figures['epochs']} epochs in {figures.get('train_seconds', 0):.0f}s")
        return ", ".join(parts)
    if name == "evaluation":
        return ", ".join(
            f"{split} AUC {f['auc']:.3f}"
            for split, f in figures.items()
            if f.get("auc") is not None
        )
    return ""


def _megabytes(value: float | None) -> str:
    return f"{value:>7.0f} MB" if value else f"{'-':>10}"


def format_run_summary(result: RunResult) -> str:
    """One line per stage: status, wall time, peak resident memory of this process and of its
    largest child (high-water marks since the run began, read at the stage's end: a stage that
    stayed below an earlier peak repeats it), and the stage's figures."""
    lines = [
        f"\nRun folder: {result.run_dir}",
        f"{'stage':<14}{'status':<9}{'time':>9}{'peak RSS':>11}{'workers':>11}  figures",
    ]
    for record in result.stages:
        lines.append(
            f"{record.name:<14}{record.status:<9}{record.wall_s:>8.1f}s "
            f"{_megabytes(record.peak_rss_mb)} {_megabytes(record.children_peak_rss_mb)}  "
            f"{_stage_highlights(record.name, record.figures)}"
        )
    if result.pending:
        lines.append(
            f"Not run by this version yet: {', '.join(result.pending)} "
            "(the pipeline stops after the ROI stage)."
        )
    return "\n".join(lines)
