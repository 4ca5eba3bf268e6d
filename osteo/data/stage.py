"""Stage 1: the manifest (making the synthetic cohort when it is missing) and the splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from osteo.config import ConfigError
from osteo.constants import TRAINING_SPLITS
from osteo.data.io import set_max_megapixels
from osteo.data.manifest import (
    EXCLUDED_SPLIT,
    SPLIT_NAMES,
    apply_splits,
    load_manifest,
    make_splits,
    read_splits,
    write_splits,
)
from osteo.hashing import digest
from osteo.pipeline.context import RunContext
from osteo.pipeline.distributed import is_global_zero, wait_for_all_ranks

__all__ = ["CohortData", "run_data_stage", "ensure_manifest"]


@dataclass
class CohortData:
    manifest: pd.DataFrame  # validated rows with a `split` column
    manifest_path: Path

    def rows(self, split: str | None = None) -> pd.DataFrame:
        table = self.manifest
        return table if split is None else table[table["split"] == split]


def ensure_manifest(ctx: RunContext) -> tuple[Path, bool]:
    """Return the manifest path, making the synthetic cohort there first if it is missing."""
    cfg = ctx.cfg.data
    path = Path(cfg.manifest)
    from osteo.data.synthetic.location import cohort_mismatch, made_by_older_generator

    if path.is_file() and cfg.synthetic.enabled and made_by_older_generator(path, cfg.synthetic):
        # osteo's own cohort folder, made by an older generator: make it again (the manifest
        # goes first, so an interrupted run finds no manifest and redoes the cohort).
        print(f"[data] {path.parent} was made by an older synthetic generator: making it again")
        path.unlink()
    if path.is_file():
        if cfg.synthetic.enabled and is_global_zero():
            mismatch = cohort_mismatch(path, cfg.synthetic)
            if mismatch:
                print(f"[data] note: {mismatch}")
        return path, False
    if not cfg.synthetic.enabled:
        raise FileNotFoundError(
            f"Manifest {path} not found. Point data.manifest at your manifest CSV, or set "
            "data.synthetic.enabled=true to make the built-in synthetic cohort there."
        )
    from osteo.data.synthetic import generate_cohort

    syn = cfg.synthetic
    print(
        f"[data] {path} is missing: making the synthetic cohort "
        f"(preset {syn.preset}) in {path.parent}"
    )
    generate_cohort(
        out_dir=path.parent,
        preset=syn.preset,
        n_studies=syn.n_studies,
        seed=syn.seed,
        image_format=syn.format,
        workers=syn.workers,
        progress=ctx.cfg.trainer.enable_progress_bar,
        spacing_mm=syn.spacing_mm,
        fullres=syn.fullres,
        site_swap=syn.site_swap,
    )
    if not path.is_file():
        raise FileNotFoundError(
            f"the synthetic cohort was made but {path} is not there; "
            "data.manifest must end in manifest.csv"
        )
    return path, True


def run_data_stage(ctx: RunContext) -> CohortData:
    # The pixel limit every later read of this process obeys (a corrupt or hostile header is
    # refused before decoding); set here because the data stage runs first in every rank.
    set_max_megapixels(float(ctx.cfg.data.max_megapixels))
    with ctx.stage("data") as record:
        # One rank makes a missing synthetic cohort; the others wait, then read it.
        generated = False
        if is_global_zero():
            path, generated = ensure_manifest(ctx)
        wait_for_all_ranks()
        path = Path(ctx.cfg.data.manifest)
        if not path.is_file():
            path, _ = ensure_manifest(ctx)  # raises: rank zero could not make it either
        manifest = load_manifest(
            path,
            require_label=True,
            check_files=ctx.cfg.data.check_files,
            allow_outside_paths=ctx.cfg.data.allow_outside_paths,
        )
        split_cfg = ctx.cfg.data.split
        if split_cfg.splits_file:
            split = apply_splits(
                manifest, read_splits(split_cfg.splits_file), source=split_cfg.splits_file
            )
        else:
            split = make_splits(
                manifest,
                split_cfg.internal_test_from,
                split_cfg.internal_test_to,
                split_cfg.internal_test_sites,
                split_cfg.external_test_sites,
                split_cfg.val_fraction,
                split_cfg.seed,
            )
        if is_global_zero():
            write_splits(
                manifest, split, ctx.run_dir / "splits.csv", clear_ids=ctx.identifiers.clear
            )
        manifest = manifest.assign(split=split.to_numpy())
        record.status = "ran"
        record.cache_key = digest(ctx.hashes.digest(path), ctx.config_dict("data"))
        record.note = "made the synthetic cohort" if generated else ""
        figures: dict = {
            "studies": len(manifest),
            "patients": int(manifest["patient_id"].nunique()),
        }
        for name in (*SPLIT_NAMES, EXCLUDED_SPLIT):
            part = manifest[manifest["split"] == name]
            figures[name] = {
                "studies": len(part),
                "patients": int(part["patient_id"].nunique()),
                "positives": int(part["label"].fillna(0).sum()),
            }
        record.figures = figures
        missing = [n for n in TRAINING_SPLITS if figures[n]["studies"] == 0]
        if missing:
            raise ConfigError(
                f"the {' and '.join(missing)} split(s) are empty; check "
                "data.split (dates, sites, val_fraction) against the manifest"
            )
        # Failure messages written later lose these studies' ids, paths and file names.
        ctx.identifiers.learn(manifest, path)
        return CohortData(manifest=manifest, manifest_path=path)
