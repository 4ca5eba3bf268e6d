"""False-rejection rate of the "not assessable" gate on synthetic hip radiographs.

Every study of the given synthetic cohorts is an AP pelvis film with two femurs, so each one
the gate rejects is a false rejection. Predicts with a trained run folder (its own U-Net, its
texture standardiser), as ``tools/predict.py`` does, and counts statuses and reasons; also
the share of each study's texture features beyond ``FEATURE_Z_LIMIT`` SD (the margin left to
``MAX_FRACTION_BEYOND``), and for each rejected study the Dice of its predicted femur masks
with the cohort's reference masks: a rejection of a study whose U-Net mask failed (Dice < 0.7
on a side) is the gate doing its job; one of a well-segmented study is a false rejection of
the gate itself.

    python tools/fit.py --config configs/quickstart.yaml
    python tools/make_synthetic.py --out /tmp/qs-seed1 --preset quickstart --n-studies 200 --seed 1
    python benchmarks/gate_false_rejections.py --run runs/quickstart \
        --cohort data/synthetic/quickstart-seed0-dicom/manifest.csv:test \
        --cohort /tmp/qs-seed1/manifest.csv:all

``:test`` keeps the run's internal and external test studies (from its ``splits.csv``);
``:all`` every study (a cohort of another seed: no study was seen in training).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
import pandas as pd

from osteo.constants import FEMUR_LABELS, TEST_SPLITS
from osteo.data.assessability import FEATURE_Z_LIMIT, MAX_FRACTION_BEYOND
from osteo.data.manifest import hash_identifier
from osteo.data.masks import read_label_map
from osteo.predict import PredictionSettings, StudyInput
from osteo.predict.batch import build_predictor


def _studies(spec: str, run: Path) -> tuple[str, list[StudyInput]]:
    path, _, which = spec.rpartition(":")
    manifest = Path(path).resolve()
    table = pd.read_csv(manifest, dtype=str)
    if which == "test":
        splits = pd.read_csv(run / "splits.csv", dtype=str)
        tested = set(splits.loc[splits["split"].isin(TEST_SPLITS), "study_id"])
        table = table[[hash_identifier(s, "study") in tested for s in table["study_id"]]]
    elif which != "all":
        raise SystemExit(f"--cohort {spec}: end it with :test or :all")
    studies = [
        StudyInput(
            row.study_id,
            manifest.parent / row.image_path,
            mask_path=manifest.parent / row.mask_path,  # the reference, for Dice only
            clinical={"age": float(row.age), "sex": row.sex, "weight": float(row.weight)},
            origin="manifest",
        )
        for row in table.itertuples()
    ]
    return f"{manifest.parent.name}:{which}", studies


# Below this Dice on either femur a predicted mask counts as a failed segmentation.
GOOD_DICE = 0.7


def _dice(predictor, study: StudyInput) -> list[float]:
    """Dice of the run's predicted mask with the reference, per femur (right, left)."""
    predicted = predictor.masks.mask_for(study).label_map
    reference, _ = read_label_map(study.mask_path)
    scores = []
    for _, label in FEMUR_LABELS:
        a, b = predicted == label, reference == label
        scores.append(round(2 * float((a & b).sum()) / max(1, int(a.sum() + b.sum())), 3))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--cohort", action="append", required=True, help="MANIFEST:test|all")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "gate_false_rejections.json")
    args = parser.parse_args()

    predictor = build_predictor(
        args.run, settings=PredictionSettings(gradcam=False, clinical_options={})
    )
    scaler = predictor.run.scalers.get("texture")
    report: dict = {
        "command": f"python benchmarks/gate_false_rejections.py --run {args.run} "
        + " ".join(f"--cohort {c}" for c in args.cohort),
        "run": str(args.run),
        "environment": common.environment(),
        "load_average_before": common.load_average(),
        "cohorts": {},
    }
    total = rejected = 0
    start = time.perf_counter()
    for spec in args.cohort:
        name, studies = _studies(spec, args.run)
        statuses, reasons, fractions, dice = Counter(), Counter(), [], []
        for study in studies:
            result = predictor.predict(study)
            statuses[result.status] += 1
            reasons.update(result.reasons)
            if result.status == "not_assessable":
                dice.append(_dice(predictor, study))
            if result.status == "failed":
                reasons[f"failed: {result.error}"] += 1
            if scaler is not None and result.ok:
                z = np.abs(predictor.model_inputs(study).batch["texture"].numpy()[0])
                fractions.append(float((z > FEATURE_Z_LIMIT).mean()))
        n_rejected = statuses["not_assessable"]
        total, rejected = total + len(studies), rejected + n_rejected
        report["cohorts"][name] = {
            "studies": len(studies),
            "statuses": dict(statuses),
            "false_rejection_rate": round(n_rejected / max(1, len(studies)), 4),
            "reasons": dict(reasons.most_common()),
            "dice_of_rejected": dice,
            "rejected_with_good_segmentation": sum(min(d) >= GOOD_DICE for d in dice),
            "texture_fraction_beyond_limit": {
                "max": round(max(fractions), 4) if fractions else None,
                "p99": round(float(np.percentile(fractions, 99)), 4) if fractions else None,
                "allowed": MAX_FRACTION_BEYOND,
            },
        }
        print(name, report["cohorts"][name])
    predictor.masks.close()
    report["studies"] = total
    report["not_assessable"] = rejected
    report["false_rejection_rate"] = round(rejected / max(1, total), 4)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["load_average_after"] = common.load_average()
    common.print_table(
        [
            ("studies", total),
            ("not assessable", rejected),
            ("rate", report["false_rejection_rate"]),
        ],
        "gate false rejections",
    )
    common.write_json(args.out, report)


if __name__ == "__main__":
    main()
