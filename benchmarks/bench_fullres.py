"""Every per-study stage on native-resolution radiographs (0.139-0.15 mm, 7-10 MP): seconds per
study, where the time goes, peak resident memory with K worker processes, and a projection to
the paper preset (5,865 studies).

    python benchmarks/bench_fullres.py                      # 12 native studies, 2 workers
    python benchmarks/bench_fullres.py --studies 24 --workers 1 --cohort /tmp/native24

What runs, per study, in a worker process (one torch/ITK thread each, as the pipeline's
workers): the data stage's file hash; segmentation prediction as ``predict_masks`` does it
(decode, anti-aliased down-sampling to the network's spacing, U-Net forward, logits mapped back
to the native grid, post-processing, the mask PNG written); ROI placement from the mask file;
pyradiomics on the four ROIs (decoding the image again, as the radiomics stage does); both hip
crops at the config's crop geometry (decoding again, as the classifier's tensor cache does).
Each stage decodes the radiograph once, as in the pipeline.

The U-Net is the default config's architecture, trained for ``--seg-epochs`` on a coarse tiny
cohort: the forward pass costs the same whatever the weights, but a briefly trained network
may miss a femur, so ROI, radiomics and crops use the cohort's reference masks unless
``--masks predicted`` (the mask file's size and reading cost are the same). Training is timed
apart: the per-study targets exclude it.

Peak memory: each worker's ``ru_maxrss`` and the parent's; their sum bounds the peak of the
whole run from above (the peaks need not coincide).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import RESULTS, environment, load_average, print_table, write_json

PAPER_STUDIES = 5865  # the paper preset's cohort size (docs/synthetic.md)
STAGES = ("data", "segmentation", "roi", "radiomics", "crops")

_WORKER: dict = {}


def _train_unet(folder: Path, epochs: int) -> tuple[Path, float]:
    """The default config's U-Net, trained for ``epochs`` on the coarse tiny cohort (0: its
    initial weights, for a smoke test)."""
    import lightning as L
    import pandas as pd
    import torch

    from osteo.config import load_config
    from osteo.data.synthetic import generate_cohort
    from osteo.segmentation.datamodule import SegmentationDataModule
    from osteo.segmentation.module import FemurSegmentationModule

    seg = load_config(Path(__file__).resolve().parents[1] / "configs" / "base.yaml").segmentation
    if epochs == 0:
        module = FemurSegmentationModule(
            network=seg.network,
            channels=list(seg.channels),
            num_res_units=seg.num_res_units,
            spacing_mm=seg.spacing_mm,
            spatial_size=list(seg.spatial_size),
        )
        checkpoint = folder / "unet.ckpt"
        state = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
        torch.save(state, checkpoint)
        return checkpoint, 0.0
    cohort = folder / "coarse"
    generate_cohort(cohort, preset="tiny", seed=0, workers=1, progress=False)
    table = pd.read_csv(cohort / "manifest.csv")
    rows = [
        {
            "study_id": r.study_id,
            "image_path": str(cohort / r.image_path),
            "mask_path": str(cohort / r.mask_path),
        }
        for r in table.itertuples()
    ]
    start = time.perf_counter()
    L.seed_everything(0, verbose=False)
    module = FemurSegmentationModule(
        network=seg.network,
        channels=list(seg.channels),
        num_res_units=seg.num_res_units,
        lr=seg.lr,
        max_epochs=epochs,
        spacing_mm=seg.spacing_mm,
        spatial_size=list(seg.spatial_size),
    )
    data = SegmentationDataModule(
        rows[:-4], rows[-4:], seg.spacing_mm, list(seg.spatial_size), seg.batch_size
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    checkpoint = folder / "unet.ckpt"
    trainer.save_checkpoint(checkpoint, weights_only=True)
    return checkpoint, time.perf_counter() - start


def _init_worker(checkpoint: str, params: str, cache: str) -> None:
    import torch

    from osteo.radiomics.extractor import RadiomicsExtractor
    from osteo.segmentation.masks import MaskCache, load_segmentation_model

    torch.set_num_threads(1)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    _WORKER["model"] = load_segmentation_model(checkpoint)
    _WORKER["extractor"] = RadiomicsExtractor(params)
    _WORKER["cache"] = MaskCache(cache)


def _study(job: dict) -> dict:
    """One study through every per-study stage; seconds by stage and step, worker peak RSS."""
    import numpy as np
    import torch
    from monai.data import decollate_batch, list_data_collate

    from osteo.classification.inputs import hip_crops
    from osteo.data.io import read_radiograph
    from osteo.data.masks import missing_femurs, read_label_map
    from osteo.data.transforms import segmentation_inference_transforms
    from osteo.hashing import file_digest
    from osteo.memory import peak_memory_mb
    from osteo.roi.geometry import place_rois
    from osteo.segmentation.masks import labels_on_native_grid, postprocess_in_box

    model, extractor, cache = _WORKER["model"], _WORKER["extractor"], _WORKER["cache"]
    image, reference = job["image_path"], job["mask_path"]
    steps: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        steps[name] = steps.get(name, 0.0) + time.perf_counter() - start
        cpu[name] = cpu.get(name, 0.0) + time.process_time() - start_cpu
        return out

    # data: the data stage hashes every file once (osteo.pipeline.file_hashes).
    image_digest = timed("data.hash", file_digest, image)

    # segmentation, step by step as predict_masks runs them.
    hp = model.hparams
    pre = segmentation_inference_transforms(hp.spacing_mm, hp.spatial_size)
    item = timed("segmentation.read_resample", pre, {"image": image})
    batch = list_data_collate([item])
    with torch.inference_mode():
        batch["pred"] = timed("segmentation.forward", model, batch["image"]).float()
    item = decollate_batch(batch)[0]
    spacing = tuple(float(s) for s in item["image"].meta["spacing"])
    label_map = timed(
        "segmentation.to_native_grid",
        labels_on_native_grid,
        np.asarray(item["pred"]),
        np.asarray(item["image"].affine),
        spacing,
        tuple(item["original_shape"]),
    )
    foreground = float((label_map > 0).mean())
    label_map = timed("segmentation.postprocess", postprocess_in_box, label_map)
    key = cache.key("bench", image_digest)
    mask_path = timed("segmentation.write_mask", cache.put, key, label_map, spacing)
    predicted_ok = not missing_femurs(label_map)
    del item, batch, label_map

    # roi: from the mask file, as the ROI stage reads it.
    use = str(mask_path) if job["masks"] == "predicted" else reference
    label_map, mask_spacing = timed("roi.read_mask", read_label_map, Path(use))
    rois = timed("roi.place", place_rois, label_map, mask_spacing)
    del label_map

    # radiomics: the stage decodes the image once, then extracts the four ROIs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        radiograph = timed("radiomics.decode", read_radiograph, image)
        _, failures = timed(
            "radiomics.extract",
            extractor.extract_study_with_failures,
            radiograph.pixels,
            rois.boxes(),
            radiograph.spacing,
        )
    del radiograph

    # crops: the classifier's tensor cache decodes the image and reads the mask once.
    radiograph = timed("crops.decode", read_radiograph, image)
    label_map, _ = timed("crops.read_mask", read_label_map, Path(use))
    timed(
        "crops.extract",
        hip_crops,
        radiograph.pixels,
        radiograph.spacing,
        label_map,
        rois,
        job["crop_mm"],
        job["crop_pixels"],
    )
    shape = radiograph.pixels.shape
    del radiograph, label_map

    return {
        "study_id": job["study_id"],
        "site": job["site"],
        "megapixels": round(shape[0] * shape[1] / 1e6, 2),
        "steps": steps,
        "cpu": cpu,
        "predicted_mask_has_both_femurs": predicted_ok,
        "predicted_foreground_fraction": foreground,
        "roi_ok": rois.ok,
        "radiomics_failed_rois": len(failures),
        "worker_pid": os.getpid(),
        "worker_peak_rss_mb": peak_memory_mb()[0],
    }


def _cohort(args, scratch: Path) -> Path:
    from osteo.data.synthetic import generate_cohort

    if args.cohort is not None and (args.cohort / "manifest.csv").is_file():
        return args.cohort
    folder = args.cohort or scratch / "native"
    start = time.perf_counter()
    # The tiny preset needs a study in each of its three cohorts.
    generate_cohort(
        folder, preset="tiny", seed=args.seed, n_studies=max(args.studies, 3), fullres=True,
        workers=args.workers, progress=False,
    )  # fmt: skip
    print(f"rendered {args.studies} native studies in {time.perf_counter() - start:.0f} s")
    return folder


def _summarise(results: list[dict], wall: float, workers: int, parent_peak: float) -> dict:
    import numpy as np

    names = sorted({name for r in results for name in r["steps"]})
    per_step = {
        n: round(float(np.mean([r["steps"].get(n, 0.0) for r in results])), 4) for n in names
    }
    per_stage = {
        stage: round(sum(v for n, v in per_step.items() if n.split(".")[0] == stage), 4)
        for stage in STAGES
    }
    per_study = round(sum(per_stage.values()), 3)
    cpu_step = {n: round(float(np.mean([r["cpu"].get(n, 0.0) for r in results])), 4) for n in names}
    cpu_stage = {
        stage: round(sum(v for n, v in cpu_step.items() if n.split(".")[0] == stage), 4)
        for stage in STAGES
    }
    by_site = {}
    for site in sorted({r["site"] for r in results}):
        part = [r for r in results if r["site"] == site]
        by_site[site] = {
            "studies": len(part),
            "megapixels": part[0]["megapixels"],
            "seconds_per_study": round(float(np.mean([sum(r["steps"].values()) for r in part])), 3),
        }
    worker_peaks: dict[int, float] = {}
    for r in results:
        worker_peaks[r["worker_pid"]] = max(
            worker_peaks.get(r["worker_pid"], 0.0), r["worker_peak_rss_mb"]
        )
    wall_per_study = wall / len(results)
    return {
        "studies": len(results),
        "workers": workers,
        "seconds_per_study_one_worker": per_study,
        "seconds_per_study_by_stage": per_stage,
        "seconds_per_study_by_step": per_step,
        # CPU time of the worker process (one thread): what the study costs whatever else
        # runs on the machine; the wall figures above include waiting for a core.
        "cpu_seconds_per_study": round(sum(cpu_stage.values()), 3),
        "cpu_seconds_per_study_by_stage": cpu_stage,
        "cpu_seconds_per_study_by_step": cpu_step,
        "by_site": by_site,
        "wall_seconds": round(wall, 2),
        "wall_seconds_per_study": round(wall_per_study, 3),
        "peak_rss_mb": {
            "parent": parent_peak,
            "workers": sorted(worker_peaks.values()),
            "sum_upper_bound": round(parent_peak + sum(worker_peaks.values()), 1),
        },
        "predicted_foreground_fraction_mean": round(
            float(np.mean([r["predicted_foreground_fraction"] for r in results])), 4
        ),
        "predicted_masks_with_both_femurs": sum(
            r["predicted_mask_has_both_femurs"] for r in results
        ),
        "roi_ok": sum(r["roi_ok"] for r in results),
        "radiomics_failed_rois": sum(r["radiomics_failed_rois"] for r in results),
    }


def _projection(summary: dict, cpus: int) -> dict:
    """5,865 studies: on this machine from the measured wall time per study with K workers;
    on a GPU machine the U-Net forward leaves the CPU (counted as free) and the other steps
    (CPU work, one study per core) spread over ``cores`` CPU cores."""
    steps = summary["cpu_seconds_per_study_by_step"]
    cpu_seconds = summary["cpu_seconds_per_study"] - steps.get("segmentation.forward", 0.0)
    return {
        "studies": PAPER_STUDIES,
        "this_machine_hours": round(PAPER_STUDIES * summary["wall_seconds_per_study"] / 3600, 2),
        "this_machine_basis": f"measured wall seconds per study with {summary['workers']} "
        f"workers on {cpus} CPUs, times {PAPER_STUDIES} (under the load recorded)",
        "this_machine_idle_hours": round(
            PAPER_STUDIES * summary["cpu_seconds_per_study"] / min(cpus, summary["workers"]) / 3600,
            2,
        ),
        "this_machine_idle_basis": "the worker CPU seconds per study, one study per worker, "
        "perfect scaling: the machine to itself",
        "per_gpu_hours_by_cpu_cores": {
            str(cores): round(PAPER_STUDIES * cpu_seconds / cores / 3600, 2)
            for cores in (8, 16, 32)
        },
        "per_gpu_basis": "the per-study worker CPU seconds without the U-Net forward (a GPU "
        "runs a 224 x 224 U-Net in milliseconds), one study per core of the GPU machine, "
        "perfect scaling: every other step is CPU work (decoding, post-processing and ROI "
        "placement on the native grid, pyradiomics), so a GPU adds little to these stages",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seg-epochs", type=int, default=8)
    parser.add_argument("--masks", choices=("exact", "predicted"), default="exact")
    parser.add_argument("--cohort", type=Path, default=None, help="reuse/make a cohort here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_fullres.json")
    args = parser.parse_args()

    import pandas as pd

    from osteo.config import crop_geometry, load_config
    from osteo.memory import peak_memory_mb

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "base.yaml")
    crop = crop_geometry(cfg.train)
    env = environment()
    with tempfile.TemporaryDirectory(prefix="bench-fullres-") as tmp:
        scratch = Path(tmp)
        cohort = _cohort(args, scratch)
        checkpoint, train_seconds = _train_unet(scratch, args.seg_epochs)
        print(f"U-Net trained for {args.seg_epochs} epochs in {train_seconds:.0f} s")
        table = pd.read_csv(cohort / "manifest.csv")
        # Sites in turn, so a short run still holds both image sizes.
        order = table.groupby("site").cumcount()
        table = table.assign(_order=order).sort_values(["_order", "site"]).head(args.studies)
        jobs = [
            {
                "study_id": r.study_id,
                "site": r.site,
                "image_path": str(cohort / r.image_path),
                "mask_path": str(cohort / r.mask_path),
                "masks": args.masks,
                "crop_mm": crop.span_mm,
                "crop_pixels": crop.pixels,
            }
            for r in table.itertuples()
        ]
        params = str(root / cfg.radiomics.params)
        load_start = load_average()
        start = time.perf_counter()
        with ProcessPoolExecutor(
            args.workers,
            initializer=_init_worker,
            initargs=(str(checkpoint), params, str(scratch / "masks")),
        ) as pool:
            results = list(pool.map(_study, jobs))
        wall = time.perf_counter() - start
        load_end = load_average()
    summary = _summarise(results, wall, args.workers, peak_memory_mb()[0])
    summary["projection"] = _projection(summary, os.cpu_count() or 1)
    summary.update(
        {
            "masks_for_later_stages": args.masks,
            "segmentation": {
                "spacing_mm": cfg.segmentation.spacing_mm,
                "spatial_size": list(cfg.segmentation.spatial_size),
                "channels": list(cfg.segmentation.channels),
                "train_epochs": args.seg_epochs,
                "train_seconds": round(train_seconds, 1),
            },
            "crop": {"spacing_mm": crop.spacing_mm, "pixels": crop.pixels},
            "radiomics_params": cfg.radiomics.params,
            "load_average_1min": {"start": load_start, "end": load_end},
            "environment": env,
            "command": "python benchmarks/bench_fullres.py "
            f"--studies {args.studies} --workers {args.workers} --seg-epochs {args.seg_epochs}",
        }
    )
    wall_cpu = [
        (k, f"{v:.3f} / {summary['cpu_seconds_per_study_by_step'][k]:.3f}")
        for k, v in summary["seconds_per_study_by_step"].items()
    ]
    rows = [
        (
            f"stage {k} (s/study, wall / cpu)",
            f"{v:.3f} / {summary['cpu_seconds_per_study_by_stage'][k]:.3f}",
        )
        for k, v in summary["seconds_per_study_by_stage"].items()
    ]
    rows += [(f"  {k}", v) for k, v in wall_cpu]
    rows += [("cpu s/study, one worker", summary["cpu_seconds_per_study"])]
    rows += [
        ("s/study, one worker", summary["seconds_per_study_one_worker"]),
        (f"wall s/study, {args.workers} workers", summary["wall_seconds_per_study"]),
        ("peak RSS sum (MB)", summary["peak_rss_mb"]["sum_upper_bound"]),
        ("paper preset, this machine (h)", summary["projection"]["this_machine_hours"]),
        ("paper preset, idle machine (h)", summary["projection"]["this_machine_idle_hours"]),
        ("load average start/end", f"{load_start}/{load_end}"),
    ]
    print_table(rows, f"{args.studies} native studies")
    write_json(args.out, summary)


if __name__ == "__main__":
    main()
