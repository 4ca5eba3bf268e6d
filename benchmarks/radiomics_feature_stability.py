"""How the 33 features per image type of configs/radiomics/default.yaml were chosen.

    python benchmarks/radiomics_feature_stability.py --subjects 400 --seed 1   # about 90 s

A repeatability screen on simulated trabecular textures (see ``bench_radiomics.py``): every
subject (random strut spacing, orientation, bone fraction, contrast, noise, grey scale, ROI size
10-25 px) is imaged twice, with a new noise realisation and the box shifted by up to 1 px. All
pyradiomics features are computed through osteo's own ROI preparation (the textures are 1 mm
images, the default radiomics spacing, so its resampling leaves them unchanged), for the image types
Original, LoG sigma 1/1.5/2/3 mm and (for comparison) the level-1 wavelet sub-bands. Then:

1. drop features that are constant after the in-ROI z-score (first-order Mean, Variance,
   RootMeanSquared) or duplicates by definition (glcm SumAverage = 2 x JointAverage);
2. drop features that encode the ROI size rather than the bone (|Spearman rho| with the pixel
   count >= 0.5 for any chosen image type; e.g. Energy and the non-normalised non-uniformities);
3. rank the rest by their worst rank-ICC(1,1) over the chosen image types, and keep them in
   that order, skipping near-duplicates (|rho| > 0.98 with a kept feature in every image type),
   until 165 / (number of image types) are kept.

It prints the mean repeatability per image type (why LoG and not wavelet detail bands), the
kept features and whether they equal the default parameter file's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from bench_radiomics import trabecular_texture
from scipy.stats import rankdata, spearmanr

from osteo.radiomics import DEFAULT_PARAMS_PATH, RadiomicsExtractor

CHOSEN_IMAGE_TYPES = [
    "original",
    "log-sigma-1-0-mm-3D",
    "log-sigma-1-5-mm-3D",
    "log-sigma-2-0-mm-3D",
    "log-sigma-3-0-mm-3D",
]
DEGENERATE = {
    "firstorder_Mean",
    "firstorder_Variance",
    "firstorder_RootMeanSquared",
    "glcm_SumAverage",
}
FEATURES_PER_STUDY_ROI = 165


def all_features_params(folder: Path) -> Path:
    """The default settings with every feature class (no shape) on all candidate image types."""
    params = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text())
    params["imageType"] = {"Original": {}, "LoG": {"sigma": [1.0, 1.5, 2.0, 3.0]}, "Wavelet": {}}
    params["featureClass"] = {c: None for c in ["firstorder", "glcm", "glrlm", "glszm", "gldm"]}
    params["featureClass"]["ngtdm"] = None
    path = folder / "all_features.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def simulate(extractor: RadiomicsExtractor, n_subjects: int, seed: int):
    """Features of every subject's two views, and each subject's ROI pixel count."""
    rng = np.random.default_rng(seed)
    views, sizes = [[], []], []
    for _ in range(n_subjects):
        shape = (64, 64)
        size = (int(rng.integers(10, 26)), int(rng.integers(10, 26)))
        texture = trabecular_texture(
            shape, rng, rng.uniform(3, 8), rng.uniform(-30, 30), rng.uniform(0.2, 0.5)
        )
        contrast, noise = rng.uniform(50, 300), rng.uniform(0.05, 0.3)
        for view in range(2):
            pixels = texture * contrast + rng.normal(scale=noise * contrast, size=shape)
            pixels = pixels * rng.uniform(0.5, 2.0) + rng.uniform(-500, 500)
            dr, dc = (0, 0) if view == 0 else (int(rng.integers(-1, 2)), int(rng.integers(-1, 2)))
            box = (20 + dr, 20 + dc, 20 + dr + size[0], 20 + dc + size[1])
            features = extractor.extract_roi(pixels.astype(np.float32), box, "right", "neck")
            views[view].append([features[f"right.neck.{n}"] for n in extractor.roi_feature_names])
        sizes.append(size[0] * size[1])
    return np.array(views[0]), np.array(views[1]), np.array(sizes)


def rank_icc(a: np.ndarray, b: np.ndarray) -> float:
    """ICC(1,1) of the ranks: repeatability, robust to heavy-tailed features."""
    ranks = rankdata(np.concatenate([a, b]))
    x = np.stack([ranks[: len(a)], ranks[len(a) :]], axis=1)
    n = len(a)
    between = 2 * ((x.mean(axis=1) - x.mean()) ** 2).sum() / (n - 1)
    within = ((x - x.mean(axis=1, keepdims=True)) ** 2).sum() / n
    return float((between - within) / (between + within))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        extractor = RadiomicsExtractor(all_features_params(Path(tmp)))
    first, second, sizes = simulate(extractor, args.subjects, args.seed)
    column = {name: j for j, name in enumerate(extractor.roi_feature_names)}

    stats = {}
    for name, j in column.items():
        both = np.concatenate([first[:, j], second[:, j]])
        if not np.all(np.isfinite(both)) or np.ptp(both) <= 1e-6 * (1 + np.abs(both).max()):
            continue  # undefined or constant: never a candidate
        stats[name] = (rank_icc(first[:, j], second[:, j]), abs(spearmanr(first[:, j], sizes)[0]))

    print("mean rank-ICC per image type (1 = perfectly repeatable):")
    for image_type in sorted({name.split("_")[0] for name in column}):
        values = [s[0] for n, s in stats.items() if n.startswith(image_type + "_")]
        print(f"  {image_type:22s} {np.mean(values):.2f}")

    per_type = FEATURES_PER_STUDY_ROI // len(CHOSEN_IMAGE_TYPES)
    candidates, size_dependent = {}, []
    for feature in sorted({name.split("_", 1)[1] for name in column}):
        names = [f"{image_type}_{feature}" for image_type in CHOSEN_IMAGE_TYPES]
        if feature in DEGENERATE or not all(n in stats for n in names):
            continue
        if max(stats[n][1] for n in names) >= 0.5:
            size_dependent.append(feature)
            continue
        candidates[feature] = min(stats[n][0] for n in names)
    print(f"\nfollow the ROI size (dropped): {', '.join(size_dependent)}")

    def near_duplicates(a: str, b: str) -> bool:
        return all(
            abs(spearmanr(first[:, column[f"{t}_{a}"]], first[:, column[f"{t}_{b}"]])[0]) > 0.98
            for t in CHOSEN_IMAGE_TYPES
        )

    kept: list[str] = []
    for feature in sorted(candidates, key=lambda f: -candidates[f]):
        if not any(near_duplicates(feature, other) for other in kept):
            kept.append(feature)
        if len(kept) == per_type:
            break
    worst = candidates[kept[-1]]
    print(f"\n{len(candidates)} candidates; kept {len(kept)} (worst rank-ICC {worst:.2f}):")
    chosen: dict[str, list[str]] = {}
    for feature in kept:
        feature_class, name = feature.split("_", 1)
        chosen.setdefault(feature_class, []).append(name)
    for feature_class, names in chosen.items():
        print(f"  {feature_class} ({len(names)}): {', '.join(sorted(names))}")

    default = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text())["featureClass"]
    same = {c: sorted(v) for c, v in chosen.items()} == {c: sorted(v) for c, v in default.items()}
    print(f"\nequal to {DEFAULT_PARAMS_PATH.name}: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
