"""Is there a built-in density reference in the synthetic images? (issue 14: systemic bone loss)

    python benchmarks/synthetic_reference_check.py --cohort data/synthetic/default-seed0-dicom

On real radiographs osteoporosis is systemic: the pelvis loses bone with the femurs, so the
femoral neck's grey level minus the pelvis's is no better a density measure than the neck's own.
Generator version 1 kept the pelvis at a fixed density, and the difference beat the neck alone
(AUC 0.80-0.84 against 0.68-0.71). This script reads the cohort's radiographs as the pipeline
does (``osteo.data.io.read_radiograph``: bone bright) and measures, per study, the mean grey
level of both reference neck ROIs (``latent.csv``) and of a 12 mm square of supra-acetabular
bone above each femoral head (10 mm medial, head radius + 14 mm up: clear of the head and the
acetabular roof line), then the AUC of each score for the label, per cohort. Low values mean
less bone, so the score is the negative grey level.

Figures (JSON ``benchmarks/results/synthetic_reference_check.json``) per cohort:
``auc_neck``, ``auc_neck_minus_pelvis``, ``difference`` (target <= 0.02), ``auc_pelvis``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from common import RESULTS, environment, load_average, print_table, write_json
from sklearn.metrics import roc_auc_score

SIDES = ("right", "left")
ROI_MM = 12.0


def _box_mean(pixels: np.ndarray, r0: float, c0: float, r1: float, c1: float) -> float:
    rows, cols = pixels.shape
    r0, r1 = max(0, int(round(r0))), min(rows, int(round(r1)))
    c0, c1 = max(0, int(round(c0))), min(cols, int(round(c1)))
    if r1 <= r0 or c1 <= c0:
        return float("nan")
    return float(pixels[r0:r1, c0:c1].mean())


def study_scores(study: pd.Series, cohort: Path) -> dict[str, float]:
    """Mean grey level of both neck ROIs and of both supra-acetabular squares."""
    from osteo.data.io import read_radiograph

    pixels = read_radiograph(cohort / study["image_path"]).pixels
    spacing = float(study["pixel_spacing_mm"])
    neck, pelvis = [], []
    for side in SIDES:
        box = [study[f"{side}_neck_roi_{k}"] for k in ("r0", "c0", "r1", "c1")]
        neck.append(_box_mean(pixels, *box))
        # The patient's right femur is on the image left: medial is +columns for it.
        medial = 1.0 if side == "right" else -1.0
        head_r, head_c = study[f"{side}_neck_axis_r0"], study[f"{side}_neck_axis_c0"]
        up_mm = float(study[f"head_radius_{side}_mm"]) + 14.0
        centre_r = head_r - up_mm / spacing
        centre_c = head_c + medial * 10.0 / spacing
        half = ROI_MM / spacing / 2.0
        pelvis.append(
            _box_mean(pixels, centre_r - half, centre_c - half, centre_r + half, centre_c + half)
        )
    return {"neck": float(np.nanmean(neck)), "pelvis": float(np.nanmean(pelvis))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cohort", type=Path, required=True, help="a synthetic cohort folder")
    parser.add_argument("--max-studies", type=int, default=None, help="per cohort (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "synthetic_reference_check.json")
    args = parser.parse_args(argv)

    env = environment()
    latent = pd.read_csv(args.cohort / "latent.csv", dtype={"study_id": str})
    manifest = pd.read_csv(args.cohort / "manifest.csv", dtype={"study_id": str})
    table = latent.merge(manifest[["study_id", "image_path"]], on="study_id")
    figures: dict = {"cohort": str(args.cohort), "cohorts": {}}
    rows = []
    for name, part in table.groupby("cohort", sort=False):
        if args.max_studies:
            part = part.head(args.max_studies)
        scores = pd.DataFrame([study_scores(s, args.cohort) for _, s in part.iterrows()])
        labels = part["label"].to_numpy(int)
        if labels.min() == labels.max():
            continue
        auc_neck = roc_auc_score(labels, -scores["neck"])
        auc_diff = roc_auc_score(labels, -(scores["neck"] - scores["pelvis"]))
        auc_pelvis = roc_auc_score(labels, -scores["pelvis"])
        figures["cohorts"][name] = {
            "studies": int(len(part)),
            "positives": int(labels.sum()),
            "auc_neck": float(auc_neck),
            "auc_neck_minus_pelvis": float(auc_diff),
            "auc_pelvis": float(auc_pelvis),
            "difference": float(auc_diff - auc_neck),
            "within_target": bool(auc_diff - auc_neck <= 0.02),
        }
        rows += [
            (f"{name}: neck AUC", auc_neck),
            (f"{name}: neck - pelvis AUC", auc_diff),
            (f"{name}: pelvis AUC", auc_pelvis),
        ]
    env["load_average_1min_at_end"] = load_average()
    print_table(rows, f"Neck grey level with and without a pelvis reference ({args.cohort.name})")
    write_json(args.out, {"environment": env, "figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
