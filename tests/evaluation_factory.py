"""Fabricated run folders and readers CSVs for the evaluation tests (no training needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SPLIT_SIZES = {"train": 30, "val": 120, "internal_test": 140, "external_test": 130}


def make_cohort(seed: int = 0, sizes: dict[str, int] | None = None) -> pd.DataFrame:
    """Studies with split, label (~25% positive), patients with repeat studies, sex and age."""
    rng = np.random.default_rng(seed)
    rows, patient = [], 0
    for split, size in (sizes or SPLIT_SIZES).items():
        for index in range(size):
            rows.append(
                {
                    "study_id": f"{split[:3]}-{index:04d}",
                    "split": split,
                    "label": int(rng.random() < 0.25),
                    "patient_id_hash": f"p{patient:05d}",
                    "sex": str(rng.choice(["F", "M"])),
                    "age": float(rng.uniform(42, 92)),
                }
            )
            patient += int(rng.random() < 0.8)  # ~20% of patients have a repeat study
    return pd.DataFrame(rows)


def make_predictions(cohort: pd.DataFrame, separation: float, seed: int) -> pd.DataFrame:
    """Probabilities whose logit separates the classes by ``separation`` standard deviations."""
    rng = np.random.default_rng(seed)
    logit = -1.2 + separation * (cohort["label"] - 0.5) + rng.normal(size=len(cohort))
    table = cohort.copy()
    table["probability"] = 1 / (1 + np.exp(-logit))
    return table


def write_run(folder: Path, predictions: pd.DataFrame, config: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    predictions.to_csv(folder / "predictions.csv", index=False)
    if config is not None:
        (folder / "config.yaml").write_text(config)
    return folder


def make_runs(root: Path, seed: int = 0) -> tuple[pd.DataFrame, list[Path]]:
    """Three runs of increasing quality on the same cohort, named through config.yaml."""
    cohort = make_cohort(seed)
    runs = [
        write_run(root / folder, make_predictions(cohort, separation, seed + i), config)
        for i, (folder, separation, config) in enumerate(
            [
                ("run_a", 1.0, "name: clinical\n"),
                ("run_b", 2.5, "model:\n  head: deep\n"),
                ("deep_clinical", 3.0, None),
            ]
        )
    ]
    return cohort, runs


def make_readers(
    cohort: pd.DataFrame, path: Path, split: str = "external_test", seed: int = 0
) -> Path:
    """Two readers scoring every study of ``split`` on a 5-point scale (1 = surely normal)."""
    rng = np.random.default_rng(seed)
    studies = cohort[cohort["split"] == split]
    rows = []
    for reader, noise in (("R1", 0.9), ("R2", 1.4)):
        raw = 2.6 + 1.6 * studies["label"].to_numpy() + rng.normal(scale=noise, size=len(studies))
        scores = np.clip(np.round(raw), 1, 5).astype(int)
        rows += [
            {"study_id": s, "reader": reader, "score": int(v)}
            for s, v in zip(studies["study_id"], scores, strict=True)
        ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
