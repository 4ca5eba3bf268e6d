"""Benchmark: inference latency per radiograph on CPU, one radiograph at a time.

    python benchmarks/bench_inference.py                 # makes a tiny cohort to read from
    python benchmarks/bench_inference.py \\
        --manifest data/synthetic/default-seed0-dicom/manifest.csv --studies 20 \\
        --seg-checkpoint cache/segmentation/<key>/model.ckpt \\
        --classifier-checkpoint runs/fusion_all/checkpoints/model.ckpt

The path a new radiograph takes through a trained model, timed part by part:

- ``segmentation``: ``predict_masks`` on one image (MONAI loading and resampling to the
  network's grid, the U-Net forward pass, inversion to the original grid, post-processing, the
  mask written to a mask cache);
- ``roi``: the neck and cortex boxes of both hips from the mask (``place_rois``);
- ``read`` and ``crops``: the radiograph read with osteo's reader, both hip crops cut;
- ``radiomics``: pyradiomics on the four ROIs (only heads with texture need it);
- ``classifier``: the Siamese CNN and the fusion head, a batch of one.

Without checkpoints the networks keep their initial weights: the same arithmetic, so the same
time, but their masks are noise, so the ROI boxes are placed on the cohort's reference mask
instead (what a trained U-Net would give on the synthetic cohort). Each figure is the median
over ``--studies`` radiographs x ``--repeats`` passes, after one untimed warm-up radiograph.

Figures (JSON, plain names): ``<part>_seconds_median`` per part,
``total_seconds_per_radiograph`` (all parts; the reference model) and
``total_without_radiomics_seconds`` (deep + clinical heads).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from common import RESULTS, ROOT, environment, load_average, print_table, write_json

PARTS = ("segmentation", "roi", "read", "crops", "radiomics", "classifier")


def load_models(args, texture_dim: int):
    from osteo.classification.hparams import classifier_config
    from osteo.classification.module import OsteoporosisModule
    from osteo.config import load_config
    from osteo.segmentation.masks import load_segmentation_model
    from osteo.segmentation.module import FemurSegmentationModule

    torch.manual_seed(0)
    if args.seg_checkpoint:
        segmenter = load_segmentation_model(args.seg_checkpoint)
    else:  # the network the main command trains (configs/fusion_all.yaml and its base)
        seg = load_config(ROOT / "configs" / "fusion_all.yaml").segmentation
        segmenter = FemurSegmentationModule(
            network=seg.network,
            channels=list(seg.channels),
            num_res_units=seg.num_res_units,
            spacing_mm=seg.spacing_mm,
            spatial_size=list(seg.spatial_size),
        ).eval()
    if args.classifier_checkpoint:
        classifier = OsteoporosisModule.load_from_checkpoint(
            args.classifier_checkpoint, map_location="cpu", weights_only=True
        )
    else:
        classifier = OsteoporosisModule(
            classifier_config(head=args.head, backbone=args.backbone, texture_dim=texture_dim)
        )
    return segmenter, classifier.eval()


def segmenter_description() -> str:
    from osteo.config import load_config

    seg = load_config(ROOT / "configs" / "fusion_all.yaml").segmentation
    size = "x".join(str(v) for v in seg.spatial_size)
    return f"{seg.network} {list(seg.channels)}, {seg.spacing_mm} mm, {size} px, untrained"


def time_one(study, models, extractor, mask_cache, args, trained_segmenter: bool) -> dict:
    from osteo.classification.hips import extract_hip_pair, hip_crop_centre
    from osteo.data.io import read_radiograph
    from osteo.roi.geometry import place_rois
    from osteo.segmentation.masks import predict_masks

    segmenter, classifier = models
    seconds = {}
    start = time.perf_counter()
    # A fresh digest per call: the mask is predicted, never read back from the cache.
    digest = f"bench-{time.perf_counter_ns()}"
    (prediction,) = predict_masks(
        segmenter, [(study.study_id, study.image_path)], mask_cache, digest, 1, progress=False
    )
    seconds["segmentation"] = time.perf_counter() - start

    mask_path = prediction.mask_path if trained_segmenter else study.mask_path
    image = sitk.ReadImage(str(mask_path))
    label_map = sitk.GetArrayFromImage(image)
    label_map = label_map[0] if label_map.ndim == 3 else label_map
    spacing = tuple(float(s) for s in reversed(image.GetSpacing()[:2]))

    start = time.perf_counter()
    rois = place_rois(label_map, spacing)
    seconds["roi"] = time.perf_counter() - start

    start = time.perf_counter()
    radiograph = read_radiograph(study.image_path)
    seconds["read"] = time.perf_counter() - start

    start = time.perf_counter()
    centres = {
        side: hip_crop_centre(rois.hips[side].boxes, label_map, label)
        for side, label in (("right", 1), ("left", 2))
    }
    right, left = extract_hip_pair(
        radiograph.pixels, radiograph.spacing or spacing, centres, args.crop_mm, args.crop_size
    )
    seconds["crops"] = time.perf_counter() - start

    start = time.perf_counter()
    texture, _ = extractor.extract_study_with_failures(
        radiograph.pixels, rois.boxes(), radiograph.spacing or spacing
    )
    seconds["radiomics"] = time.perf_counter() - start

    batch = {
        "right": torch.from_numpy(right)[None, None],
        "left": torch.from_numpy(left)[None, None],
        "clinical": torch.tensor([[0.0, 0.0, 0.0]]),  # standardised age, sex, weight
        "texture": torch.from_numpy(np.nan_to_num(texture))[None].float(),
    }
    start = time.perf_counter()
    with torch.inference_mode():
        torch.sigmoid(classifier(batch)["logit"])
    seconds["classifier"] = time.perf_counter() - start
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", type=Path, default=None, help="default: a tiny cohort")
    parser.add_argument("--studies", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seg-checkpoint", type=Path, default=None)
    parser.add_argument("--classifier-checkpoint", type=Path, default=None)
    parser.add_argument("--head", default="deep_texture_clinical")
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--crop-mm", type=float, default=110.0)
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="JSON file")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)

    from osteo.data.manifest import load_manifest
    from osteo.radiomics import DEFAULT_PARAMS_PATH, RadiomicsExtractor
    from osteo.segmentation.masks import MaskCache

    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        manifest_path = args.manifest
        if manifest_path is None:
            from osteo.data.synthetic import generate_cohort

            generate_cohort(Path(tmp) / "cohort", preset="tiny", seed=0, workers=1, progress=False)
            manifest_path = Path(tmp) / "cohort" / "manifest.csv"
        manifest = load_manifest(manifest_path, require_label=False)
        trained = args.seg_checkpoint is not None
        if not trained and manifest["mask_path"].isna().all():
            raise SystemExit("without --seg-checkpoint the manifest needs reference masks")
        rows = manifest[manifest["mask_path"].notna()] if not trained else manifest
        studies = list(rows.head(args.studies + 1).itertuples(index=False))
        extractor = RadiomicsExtractor(DEFAULT_PARAMS_PATH)
        models = load_models(args, len(extractor.feature_names))
        cache = MaskCache(Path(tmp) / "masks")
        time_one(studies[0], models, extractor, cache, args, trained)  # warm-up, untimed
        samples = {part: [] for part in PARTS}
        totals, without_radiomics = [], []
        for _ in range(args.repeats):
            for study in studies[1:]:
                seconds = time_one(study, models, extractor, cache, args, trained)
                for part in PARTS:
                    samples[part].append(seconds[part])
                totals.append(sum(seconds.values()))
                without_radiomics.append(sum(v for k, v in seconds.items() if k != "radiomics"))
    figures = {f"{p}_seconds_median": round(statistics.median(samples[p]), 4) for p in PARTS}
    figures["total_seconds_per_radiograph"] = round(statistics.median(totals), 4)
    figures["total_without_radiomics_seconds"] = round(statistics.median(without_radiomics), 4)
    result = {
        "settings": {
            "studies": len(studies) - 1,
            "repeats": args.repeats,
            "head": args.head,
            "backbone": args.backbone,
            "crop_size": args.crop_size,
            "segmentation": str(args.seg_checkpoint) if trained else segmenter_description(),
            "roi_from": "predicted mask" if trained else "reference mask",
            "device": "cpu",
        },
        **figures,
        "environment": {**env, "load_average_1min_at_end": load_average()},
    }
    print_table(list(figures.items()), "inference per radiograph, CPU")
    write_json(args.out or RESULTS / "inference.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
