"""Benchmark: classifier training in Lightning against a bare PyTorch loop, and the data
loader's time per batch against the step time.

    python benchmarks/bench_training.py                      # CPU, fp32
    python benchmarks/bench_training.py --accelerator cuda --precision bf16-mixed  # one GPU

Both loops train a fresh ``OsteoporosisModule`` (same seed, same config, AdamW from its own
``configure_optimizers``) on the same batches, materialised once from ``HipDataModule``'s
training loader, for the same number of steps. The bare loop is forward, loss, zero_grad,
backward, step; Lightning adds its loop, hooks, ``self.log`` and the torchmetrics updates of
``training_step``. The first ``--warmup`` steps are not timed; each figure is the fastest of
``--repeats`` interleaved runs (other processes on a shared machine only add time).

Figures (JSON, plain names): ``bare_images_per_second``, ``lightning_images_per_second``
(radiographs per second; each is two hip crops plus its clinical and texture values),
``lightning_overhead_ratio`` = Lightning time / bare time (target <= 1.15),
``loader_seconds_per_batch`` (iterating the training loader: collation and augmentation),
``step_seconds_per_batch`` (Lightning's training step), and their ratio.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, environment, load_average, print_table, write_json

TARGET_OVERHEAD = 1.15
TEXTURE_DIM = 660


def make_split_file(path: Path, n: int, crop_size: int, seed: int) -> Path:
    """A training split in the pipeline's tensor format, with random crops and features."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.2).astype(np.float32)
    labels[:2] = (0.0, 1.0)  # both classes present
    crops = rng.normal(size=(2, n, 1, crop_size, crop_size)).astype(np.float16)
    tensors = {
        "study_id": [f"S{i:05d}" for i in range(n)],
        "clinical": torch.from_numpy(rng.normal([70, 0.3, 60], [10, 0.5, 10], (n, 3))).float(),
        "clinical_names": ["age", "sex", "weight"],
        "label": torch.from_numpy(labels),
        "tscore": torch.from_numpy(rng.normal(-1.5, 1.0, n).astype(np.float32)),
        "texture": torch.from_numpy(rng.normal(size=(n, TEXTURE_DIM)).astype(np.float32)),
        "texture_names": [f"f{i}" for i in range(TEXTURE_DIM)],
        "right": torch.from_numpy(crops[0]),
        "left": torch.from_numpy(crops[1]),
    }
    torch.save(tensors, path)
    return path


def make_module(args, pos_weight: float):
    from osteo.classification.hparams import classifier_config
    from osteo.classification.module import OsteoporosisModule

    torch.manual_seed(args.seed)
    config = classifier_config(
        head=args.head,
        backbone=args.backbone,
        texture_dim=TEXTURE_DIM,
        scheduler="none",  # the plain optimiser in both loops
        pos_weight=pos_weight,
    )
    return OsteoporosisModule(config)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _to(batch: dict, device: torch.device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def bare_loop(module, batches: list[dict], warmup: int, device, precision: str) -> float:
    """Seconds of the timed steps of a plain PyTorch loop."""
    module = module.to(device).train()
    optimizer = module.configure_optimizers()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    start = None
    for step, batch in enumerate(batches):
        if step == warmup:
            _sync(device)
            start = time.perf_counter()
        batch = _to(batch, device)
        with autocast:
            out = module(batch)
            loss = module.compute_losses(out, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return time.perf_counter() - start


class _Batches:
    """The materialised batches as an iterable Lightning accepts as a training loader."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def lightning_loop(module, batches: list[dict], warmup: int, accelerator: str, precision: str):
    """Seconds of the timed steps under ``Trainer.fit`` (from the end of the last warm-up
    step to the end of the last step, measured by a callback)."""
    import lightning as L

    stamps: list[float] = []
    device = torch.device("cuda" if accelerator in ("cuda", "gpu") else "cpu")

    class StepTimer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            _sync(device)
            stamps.append(time.perf_counter())

    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_steps=len(batches),
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[StepTimer()],
    )
    trainer.fit(module, train_dataloaders=_Batches(batches))
    return stamps[-1] - stamps[warmup - 1]


def loader_seconds_per_batch(datamodule, n_batches: int) -> float:
    """Mean time to get one batch from the training loader (iterator start-up included)."""
    start = time.perf_counter()
    count = sum(1 for _ in itertools.islice(datamodule.train_dataloader(), n_batches))
    return (time.perf_counter() - start) / count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--head", default="deep_texture_clinical")
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--num-workers", type=int, default=0, help="training loader workers")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "cuda", "gpu"])
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON file")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--steps and --warmup must be at least 1")
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    from osteo.classification.datamodule import HipDataModule

    env = environment()
    n_batches = args.steps + args.warmup
    device = torch.device("cuda" if args.accelerator in ("cuda", "gpu") else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        split = make_split_file(
            Path(tmp) / "train.pt", n_batches * args.batch_size, args.crop_size, args.seed
        )
        datamodule = HipDataModule(
            {"train": split},
            inputs=("deep", "texture", "clinical"),
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            seed=args.seed,
        )
        datamodule.setup("fit")
        torch.manual_seed(args.seed)
        batches = list(itertools.islice(datamodule.train_dataloader(), n_batches))
        loader = [loader_seconds_per_batch(datamodule, n_batches) for _ in range(args.repeats)]
    raw = {"bare": [], "lightning": []}
    for _ in range(args.repeats):  # interleaved, so a busy spell hits both
        module = make_module(args, datamodule.pos_weight)
        raw["bare"].append(bare_loop(module, batches, args.warmup, device, args.precision))
        module = make_module(args, datamodule.pos_weight)
        raw["lightning"].append(
            lightning_loop(module, batches, args.warmup, args.accelerator, args.precision)
        )
    bare, lightning = min(raw["bare"]), min(raw["lightning"])
    images = args.steps * args.batch_size
    step = lightning / args.steps
    figures = {
        "bare_images_per_second": round(images / bare, 2),
        "lightning_images_per_second": round(images / lightning, 2),
        "lightning_overhead_ratio": round(lightning / bare, 3),
        "loader_seconds_per_batch": round(min(loader), 5),
        "step_seconds_per_batch": round(step, 5),
        "loader_to_step_ratio": round(min(loader) / step, 3),
    }
    result = {
        "settings": {
            "steps": args.steps,
            "warmup": args.warmup,
            "batch_size": args.batch_size,
            "crop_size": args.crop_size,
            "head": args.head,
            "backbone": args.backbone,
            "num_workers": args.num_workers,
            "repeats": args.repeats,
            "accelerator": args.accelerator,
            "precision": args.precision,
        },
        **figures,
        "targets": {"lightning_overhead_ratio": TARGET_OVERHEAD},
        "raw_seconds": {k: [round(v, 4) for v in vs] for k, vs in raw.items()},
        "environment": {**env, "load_average_1min_at_end": load_average()},
    }
    print_table(list(figures.items()), f"training, {args.accelerator} {args.precision}")
    name = (
        "training.json" if device.type == "cpu" else f"training_{device.type}_{args.precision}.json"
    )
    write_json(args.out or RESULTS / name, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
