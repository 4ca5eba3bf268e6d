"""Resolution study, part ``heads`` (issue 15, part b): the texture and deep heads' AUC when
the radiomics ROIs and the CNN's hip crops are sampled at 0.25, 0.5 or 1.0 mm.

    python benchmarks/resolution_study.py heads --train 200 --test 200 --workers 2

Studies: site-A studies of the ``paper`` preset's cohort table (one study per patient, so no
patient is in both sets), balanced (half positive) so 100 + 100 test studies give AUC
standard errors of about 0.03 and paired differences of about 0.04 are detectable. Each
study is rendered once at site A's native detector pitch (0.15 mm, the ``fullres`` cohort's
spacing) and every arm is cut from that one image, so the arms differ only in their spacing:

- **texture head** (660 radiomics features, ``head: texture``): the ROIs are the generator's
  exact reference boxes (ROI placement does not enter), resampled to each radiomics spacing
  by osteo's own preparation (``RadiomicsExtractor``, anti-aliased);
- **deep head** (the Siamese CNN, ``head: deep``): hip crops by osteo's own crop builder
  (``extract_hip_pair``, centred between each hip's neck and cortex boxes, anti-aliased) at a
  fixed ``--crop-mm`` (default 80 mm: both boxes of a hip and the bone between them) sampled
  at each crop spacing (320, 160 and 80 px), plus the shipped default (110.4 mm at 1.15 mm,
  96 px) for reference.

Every arm trains the configs/base.yaml model (lr, weight decay, cosine schedule, pos_weight
balance, the same augmentation) for ``--epochs`` epochs with the same seed, and is scored
on the same test studies: AUC with DeLong's 95% CI and DeLong's paired test against the
1.0 mm arm. Costs: seconds per study to cut the crops / extract the features, and training
seconds per epoch on this CPU (the deep head's cost grows with the square of the pixels).

Rendered studies are cached (``--cache``), so a second run only trains.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, environment, load_average, write_json

RADIOMICS_SPACINGS_MM = (0.25, 0.5, 1.0)
CROP_SPACINGS_MM = (0.25, 0.5, 1.0)
DEFAULT_CROP = ("default", 110.4, 1.15)  # configs/base.yaml's train.crop_mm / crop_spacing_mm
REFERENCE_ARM = "1"  # the paired tests compare every arm with this one


def crop_arms(crop_mm: float) -> list[tuple[str, float, float]]:
    """(name, crop_mm, crop_spacing_mm) of every deep-head arm."""
    return [(f"{s:g}", crop_mm, s) for s in CROP_SPACINGS_MM] + [DEFAULT_CROP]


def select_studies(n_train: int, n_test: int, seed: int):
    """Balanced, patient-disjoint site-A train and test rows of the paper cohort table."""
    from osteo.data.synthetic import sample_cohort_table

    table = sample_cohort_table("paper", seed=seed)
    site_a = table[table["site"] == "A"].drop_duplicates("patient_id", keep="first")
    positives = site_a[site_a["label"] == 1]
    negatives = site_a[site_a["label"] == 0]
    need_pos = n_train // 2 + n_test // 2
    need_neg = (n_train - n_train // 2) + (n_test - n_test // 2)
    if len(positives) < need_pos or len(negatives) < need_neg:
        raise SystemExit(
            f"--train {n_train} --test {n_test} need {need_pos} positive and {need_neg} "
            f"negative patients; the paper cohort's site A has {len(positives)} and "
            f"{len(negatives)}"
        )
    pos, neg = positives.head(need_pos), negatives.head(need_neg)
    train = [
        *pos.iloc[: n_train // 2].to_dict("records"),
        *neg.iloc[: n_train - n_train // 2].to_dict("records"),
    ]
    test = [
        *pos.iloc[n_train // 2 :].to_dict("records"),
        *neg.iloc[n_train - n_train // 2 :].to_dict("records"),
    ]
    return train, test


# ---------------------------------------------------------------------- rendering (workers)


def _study_inputs(task: tuple[dict, float, Path]) -> Path:
    """Render one study natively; its features per radiomics spacing and crops per arm
    go to ``<cache>/<study_id>.npz`` (reused when there)."""
    from resolution_study import _boxes, _extractors

    from osteo.classification.hips import extract_hip_pair, hip_crop_centre
    from osteo.data.synthetic import SITES, render_study
    from osteo.files import atomic_path

    row, crop_mm, cache = task
    path = cache / f"{row['study_id']}.npz"
    if path.exists():
        return path
    spacing = SITES[row["site"]].native_spacing_mm
    out: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    rendered = render_study(row, spacing_mm=spacing)
    pixels = rendered.stored.astype(np.float32)
    if rendered.site.photometric == "MONOCHROME1":  # bone bright, as osteo.data.io reads it
        pixels = float(2**rendered.site.bits_stored - 1) - pixels
    out["seconds_render"] = np.float64(time.perf_counter() - start)
    boxes = _boxes(rendered.geometry)
    for name, extractor in _extractors.items():
        start = time.perf_counter()
        values, _ = extractor.extract_study_with_failures(pixels, boxes, (spacing, spacing))
        out[f"seconds_texture_{name}"] = np.float64(time.perf_counter() - start)
        out[f"texture_{name}"] = np.asarray(values, dtype=np.float32)
    centres = {
        side: hip_crop_centre({roi: boxes[(side, roi)] for roi in ("neck", "cortex")}, None, 0)
        for side in ("right", "left")
    }
    for name, mm, crop_spacing in crop_arms(crop_mm):
        start = time.perf_counter()
        size = int(round(mm / crop_spacing))
        right, left = extract_hip_pair(pixels, (spacing, spacing), centres, mm, size)
        out[f"seconds_crop_{name}"] = np.float64(time.perf_counter() - start)
        out[f"right_{name}"] = right.astype(np.float16)
        out[f"left_{name}"] = left.astype(np.float16)
    with atomic_path(path, suffix=".npz") as temporary:  # a killed run leaves no half study
        np.savez(temporary, **out)
    return path


# ---------------------------------------------------------------------- training


def _split_tensors(rows: list[dict], arrays: list[dict], texture: str | None, crop: str | None):
    import torch

    from osteo.classification.inputs import CLINICAL_NAMES, clinical_vector

    tensors = {
        "study_id": [r["study_id"] for r in rows],
        "clinical": torch.from_numpy(
            np.stack([clinical_vector(r["age"], r["sex"], r["weight"]) for r in rows])
        ),
        "clinical_names": list(CLINICAL_NAMES),
        "label": torch.tensor([float(r["label"]) for r in rows]),
        "tscore": torch.tensor([float(r["tscore"]) for r in rows]),
    }
    if texture is not None:
        tensors["texture"] = torch.from_numpy(np.stack([a[f"texture_{texture}"] for a in arrays]))
    if crop is not None:
        for side in ("right", "left"):
            tensors[side] = torch.from_numpy(
                np.stack([a[f"{side}_{crop}"] for a in arrays])[:, None]
            )
    return tensors


def train_and_score(head: str, train: tuple, test: tuple, arm: str, args) -> dict:
    """Train ``head`` on one arm's inputs; its test AUC (DeLong CI), scores and costs."""
    import lightning as L
    import torch

    from osteo.classification.datamodule import HipDataModule
    from osteo.classification.hparams import classifier_config
    from osteo.classification.module import OsteoporosisModule
    from osteo.config import load_config
    from osteo.evaluation.stats import delong_auc

    texture, crop = (arm, None) if head == "texture" else (None, arm)
    model_section = dict(load_config(ROOT / "configs" / "base.yaml").model)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for split, (rows, arrays) in {"train": train, "internal_test": test}.items():
            files[split] = Path(tmp) / f"{split}.pt"
            torch.save(_split_tensors(rows, arrays, texture, crop), files[split])
        L.seed_everything(args.seed, workers=True, verbose=False)
        datamodule = HipDataModule(files, inputs=(head,), batch_size=32, seed=args.seed)
        datamodule.setup("fit")
        settings = classifier_config(
            model_section,
            head=head,
            texture_dim=len(train[1][0][f"texture_{REFERENCE_ARM}"]),
            imbalance="pos_weight",
            pos_weight=datamodule.pos_weight,
            test_splits=["internal_test"],
        )
        module = OsteoporosisModule(settings)
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=args.epochs,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            default_root_dir=tmp,
        )
        start = time.perf_counter()
        trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
        seconds = time.perf_counter() - start
        batches = trainer.predict(module, datamodule=datamodule)  # internal_test: the one split
    scores = torch.cat([b["probability"] for b in batches]).numpy()
    labels = np.array([r["label"] for r in test[0]], dtype=int)
    estimate = delong_auc(labels, scores)
    return {
        "auc": round(float(estimate.auc), 4),
        "auc_ci95": [round(float(estimate.ci_low), 4), round(float(estimate.ci_high), 4)],
        "train_seconds_per_epoch": round(seconds / args.epochs, 2),
        "scores": scores,
    }


def run_heads(args: argparse.Namespace) -> int:
    from resolution_study import map_studies, params_file

    from osteo.evaluation.stats import delong_paired_test

    train_rows, test_rows = select_studies(args.train, args.test, args.seed)
    rows = train_rows + test_rows
    cache = args.cache / f"paper-seed{args.seed}-crop{args.crop_mm:g}mm"
    cache.mkdir(parents=True, exist_ok=True)
    load_start = load_average()
    start = run_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {f"{s:g}": params_file(Path(tmp), f"{s:g}") for s in RADIOMICS_SPACINGS_MM}
        done = map_studies(
            _study_inputs, [(row, args.crop_mm, cache) for row in rows], args.workers, paths
        )
    render_wall = time.perf_counter() - start
    arrays = [dict(np.load(p)) for p in done]
    train = (train_rows, arrays[: len(train_rows)])
    test = (test_rows, arrays[len(train_rows) :])
    labels = np.array([r["label"] for r in test_rows], dtype=int)

    results: dict = {"texture": {}, "deep": {}}
    arms = {
        "texture": [f"{s:g}" for s in RADIOMICS_SPACINGS_MM],
        "deep": [name for name, _, _ in crop_arms(args.crop_mm)],
    }
    for head in args.heads:
        for arm in arms[head]:
            print(f"training {head} at {arm}", file=sys.stderr, flush=True)
            results[head][arm] = train_and_score(head, train, test, arm, args)
        reference = results[head][REFERENCE_ARM]["scores"]
        for arm, result in results[head].items():
            if arm != REFERENCE_ARM:
                paired = delong_paired_test(labels, result["scores"], reference)
                result["vs_1mm"] = {
                    "auc_difference": round(float(paired.difference), 4),
                    "p_value": round(float(paired.p_value), 4),
                }
    seconds = {
        key.removeprefix("seconds_"): round(float(np.mean([a[key] for a in arrays])), 3)
        for key in arrays[0]
        if key.startswith("seconds_")
    }
    geometry = {name: [mm, s, int(round(mm / s))] for name, mm, s in crop_arms(args.crop_mm)}

    print(
        f"\nheads' test AUC by spacing ({len(test_rows)} site-A test studies, "
        f"{int(labels.sum())} positive; trained on {len(train_rows)}, {args.epochs} epochs)"
    )
    for head in args.heads:
        for arm, r in results[head].items():
            what = (
                f"radiomics at {arm} mm"
                if head == "texture"
                else f"crop {geometry[arm][0]:g} mm at {geometry[arm][1]:g} mm "
                f"({geometry[arm][2]} px)"
            )
            cost = seconds[f"texture_{arm}" if head == "texture" else f"crop_{arm}"]
            paired = r.get("vs_1mm")
            versus = (
                f"vs 1 mm {paired['auc_difference']:+.3f} (p {paired['p_value']:.3f})"
                if paired
                else "reference"
            )
            print(
                f"  {head:<8} {what:<34} AUC {r['auc']:.3f} "
                f"[{r['auc_ci95'][0]:.3f}, {r['auc_ci95'][1]:.3f}]  {versus:<26} "
                f"{cost:.2f} s/study  {r['train_seconds_per_epoch']:.1f} s/epoch"
            )
        for r in results[head].values():
            r.pop("scores")

    write_json(
        args.out,
        {
            "part": "heads",
            "command": "python benchmarks/resolution_study.py " + " ".join(sys.argv[1:]),
            "preset": "paper",
            "seed": args.seed,
            "site": "A",
            "image_spacing_mm": 0.15,
            "n_train": len(train_rows),
            "n_test": len(test_rows),
            "test_positives": int(labels.sum()),
            "epochs": args.epochs,
            "crop_arms_mm_spacing_pixels": geometry,
            "radiomics_spacings_mm": list(RADIOMICS_SPACINGS_MM),
            "results": results,
            "mean_seconds_per_study": seconds,
            "render_and_extract_wall_seconds": round(render_wall, 1),
            "wall_seconds": round(time.perf_counter() - run_start, 1),
            "workers": args.workers,
            "load_average_1min": {"start": load_start, "end": load_average()},
            "environment": environment(),
        },
    )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from common import RESULTS

    parser.add_argument("--train", type=int, default=200, help="training studies (balanced)")
    parser.add_argument("--test", type=int, default=200, help="test studies (balanced)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--crop-mm", type=float, default=80.0)
    parser.add_argument(
        "--heads", nargs="+", choices=("texture", "deep"), default=["texture", "deep"]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="0: in this process")
    parser.add_argument("--cache", type=Path, default=ROOT / "cache" / "resolution_study")
    parser.add_argument("--out", type=Path, default=RESULTS / "resolution_heads.json")
