"""Resolution study (issue 15): how the pixel spacing of a radiograph changes what osteo sees.

    python benchmarks/resolution_study.py radiomics --studies 48 --workers 2   # ~10 min
    python benchmarks/resolution_study.py heads --train 200 --test 200         # see below

Part ``heads`` (part b, ``resolution_heads.py``): the texture and deep heads' test AUC with
the radiomics ROIs and the CNN's hip crops sampled at 0.25, 0.5 and 1.0 mm, all cut from the
same native 0.15 mm renders; results in ``benchmarks/results/resolution_heads.json``.

Part ``radiomics`` (part a): are the radiomics features of one bone the same at every site's
pixel spacing, and at which radiomics spacing (``resampledPixelSpacing`` of the parameter
file) are they most so? The synthetic generator renders the same study (same anatomy, same
trabecular structure, same site acquisition and processing, kernels in mm, quanta per pixel
scaled with the pixel area) at any spacing, so rendering one study at two spacings isolates the
spacing: **each pair keeps the study's own site acquisition** and changes only the pixel grid.
Pairs:

- ``native_A_vs_B``: 0.15 mm (site A's CR pitch) vs 0.139 mm (site B's CsI panel pitch);
- ``archive_A_vs_B``: 0.7 mm vs 1.0 mm (the default cohort's archive spacings at A and B);
- ``native_vs_archive``: 0.15 mm vs 1.0 mm.

ROIs are the generator's exact reference boxes (12 mm squares at each spacing, from
``render_study(...).geometry``), so ROI placement does not enter. For each radiomics spacing
tried (``none`` = the image's own spacing, today's behaviour without resampling), every study's
660 features are extracted at both spacings of a pair and each feature's agreement over the
studies is measured with the rank-ICC(1,1) of ``radiomics_feature_stability.py`` (absolute
agreement on ranks: an offset between spacings counts against it, heavy tails do not dominate)
and Lin's concordance correlation coefficient on the raw values. Reported per pair and
radiomics spacing: median over features, share of features >= 0.75 ("good" reliability, Koo &
Li 2016, J Chiropr Med 15:155) and >= 0.9 ("excellent"), and the median per image type.

Studies are the first ``--studies`` rows of the preset's cohort table, half from site A and
half from site B (each rendered with its own acquisition). Images are the device's stored
values, MONOCHROME1 inverted (bone bright), as ``osteo.data.io`` reads them.

Output: ``benchmarks/results/resolution_study.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import resolution_heads
from common import RESULTS, environment, load_average, write_json

PAIRS = {
    "native_A_vs_B": (0.15, 0.139),
    "archive_A_vs_B": (0.7, 1.0),
    "native_vs_archive": (0.15, 1.0),
}
RADIOMICS_SPACINGS = ("none", "0.25", "0.5", "0.7", "1.0", "0.5-noaa", "1.0-noaa")
GOOD, EXCELLENT = 0.75, 0.9  # Koo & Li 2016
# A radiomics spacing with this suffix ("1.0-noaa") resamples without the anti-aliasing
# pre-filter: what pyradiomics' own resampleImage would do.
NO_ANTIALIAS = "-noaa"


# ---------------------------------------------------------------------- extraction (workers)


def params_file(folder: Path, spacing: str) -> Path:
    """The default parameter file with ``resampledPixelSpacing`` set to ``spacing`` mm (or
    removed for ``none``; a ``-noaa`` suffix is handled by the extractor options); everything
    else as shipped."""
    import yaml

    from osteo.radiomics import DEFAULT_PARAMS_PATH

    params = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text())
    params.setdefault("setting", {}).pop("resampledPixelSpacing", None)
    if spacing != "none":
        mm = float(spacing.removesuffix(NO_ANTIALIAS))
        params["setting"]["resampledPixelSpacing"] = [mm, mm]
    path = folder / f"params_{spacing}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


_extractors: dict = {}


def _init_worker(param_paths: dict[str, Path]) -> None:
    import SimpleITK as sitk

    from osteo.radiomics import RadiomicsExtractor

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)  # the pool keeps the cores busy
    _extractors.update(
        {
            s: RadiomicsExtractor(p, antialias=not s.endswith(NO_ANTIALIAS))
            for s, p in param_paths.items()
        }
    )


def _boxes(geometry: dict) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    from osteo.radiomics import ROI_SLOTS

    return {
        (side, roi): tuple(
            int(round(geometry[f"{side}_{roi}_roi_{k}"])) for k in ("r0", "c0", "r1", "c1")
        )
        for side, roi in ROI_SLOTS
    }


def _study_features(task: tuple[dict, list[float]]) -> dict:
    """Render one study at every spacing; features for every radiomics spacing; seconds."""
    from osteo.data.synthetic import render_study

    row, spacings = task
    out: dict = {"study_id": row["study_id"], "site": row["site"], "features": {}, "seconds": {}}
    for spacing in spacings:
        start = time.perf_counter()
        rendered = render_study(row, spacing_mm=spacing)
        pixels = rendered.stored.astype(np.float32)
        if rendered.site.photometric == "MONOCHROME1":  # bone bright, as osteo.data.io reads it
            pixels = float(2**rendered.site.bits_stored - 1) - pixels
        out["seconds"][f"render_{spacing}"] = time.perf_counter() - start
        boxes = _boxes(rendered.geometry)
        for name, extractor in _extractors.items():
            start = time.perf_counter()
            values, failures = extractor.extract_study_with_failures(
                pixels, boxes, (spacing, spacing)
            )
            out["seconds"][f"extract_{spacing}_{name}"] = time.perf_counter() - start
            out["features"][(spacing, name)] = values
            if failures:
                out.setdefault("failures", {})[f"{spacing}/{name}"] = failures
    return out


def map_studies(function, tasks: list, workers: int, param_paths: dict[str, Path]) -> list:
    """``function(task)`` for every task, in order, in ``workers`` forkserver processes (0: in
    this one), a count on stderr; each process holds one extractor per radiomics spacing of
    ``param_paths`` (``_extractors``)."""
    results = []

    def collect(outputs) -> None:
        for i, output in enumerate(outputs):
            results.append(output)
            print(f"  study {i + 1}/{len(tasks)}", file=sys.stderr, flush=True)

    if workers == 0:
        _init_worker(param_paths)
        collect(map(function, tasks))
    else:
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(param_paths,)
        ) as pool:
            collect(pool.map(function, tasks))
    return results


# ---------------------------------------------------------------------- agreement


def rank_icc(a: np.ndarray, b: np.ndarray) -> float:
    from radiomics_feature_stability import rank_icc as icc

    return icc(a, b)


def lin_ccc(a: np.ndarray, b: np.ndarray) -> float:
    """Lin's concordance correlation coefficient (Lin 1989, Biometrics 45:255)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    var_a, var_b = a.var(), b.var()
    denominator = var_a + var_b + (a.mean() - b.mean()) ** 2
    if denominator == 0:
        return float("nan")
    return float(2 * np.mean((a - a.mean()) * (b - b.mean())) / denominator)


def agreement(first: np.ndarray, second: np.ndarray, names: list[str]) -> dict:
    """Per-feature rank-ICC and CCC of two [studies, features] matrices, summarised."""
    iccs, cccs = np.full(len(names), np.nan), np.full(len(names), np.nan)
    for j in range(len(names)):
        ok = np.isfinite(first[:, j]) & np.isfinite(second[:, j])
        a, b = first[ok, j], second[ok, j]
        if ok.sum() < 5 or np.ptp(np.concatenate([a, b])) == 0:
            continue
        iccs[j], cccs[j] = rank_icc(a, b), lin_ccc(a, b)
    image_types = [name.split(".")[2].split("_")[0] for name in names]
    per_type = {
        t: round(float(np.nanmedian(iccs[[i for i, x in enumerate(image_types) if x == t]])), 3)
        for t in dict.fromkeys(image_types)
    }
    defined = np.isfinite(iccs)
    return {
        "n_features_defined": int(defined.sum()),
        "median_rank_icc": round(float(np.nanmedian(iccs)), 3),
        "share_rank_icc_good": round(float(np.mean(iccs[defined] >= GOOD)), 3),
        "share_rank_icc_excellent": round(float(np.mean(iccs[defined] >= EXCELLENT)), 3),
        "median_ccc": round(float(np.nanmedian(cccs)), 3),
        "share_ccc_good": round(float(np.mean(cccs[np.isfinite(cccs)] >= GOOD)), 3),
        "median_rank_icc_by_image_type": per_type,
    }


# ---------------------------------------------------------------------- the part


def run_radiomics(args: argparse.Namespace) -> int:
    from osteo.data.synthetic import sample_cohort_table

    table = sample_cohort_table(args.preset, seed=args.seed)
    half = args.studies // 2
    rows = [
        *table[table["site"] == "A"].head(args.studies - half).to_dict("records"),
        *table[table["site"] == "B"].head(half).to_dict("records"),
    ]
    spacings = sorted({s for pair in PAIRS.values() for s in pair})
    radiomics_spacings = list(args.radiomics_spacings)
    for value in radiomics_spacings:
        mm = value.removesuffix(NO_ANTIALIAS)
        if value != "none" and not (mm.replace(".", "", 1).isdigit() and float(mm) > 0):
            raise SystemExit(
                f"--radiomics-spacings: {value!r} is neither 'none' nor mm > 0 (optionally "
                f"with {NO_ANTIALIAS})"
            )
    load_start = load_average()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {s: params_file(Path(tmp), s) for s in radiomics_spacings}
        results = map_studies(
            _study_features, [(row, spacings) for row in rows], args.workers, paths
        )
        if args.workers:
            _init_worker(paths)  # feature names in this process
    wall = time.perf_counter() - start
    names = list(next(iter(_extractors.values())).feature_names)

    matrices = {
        key: np.stack([r["features"][key] for r in results]) for key in results[0]["features"]
    }
    summary: dict = {}
    for pair, (first, second) in PAIRS.items():
        summary[pair] = {
            s: agreement(matrices[(first, s)], matrices[(second, s)], names)
            for s in radiomics_spacings
        }
    seconds = {
        key: round(float(np.mean([r["seconds"][key] for r in results])), 3)
        for key in results[0]["seconds"]
    }
    failures = {r["study_id"]: r["failures"] for r in results if r.get("failures")}

    print(f"\nradiomics feature agreement between spacings ({len(rows)} studies, 660 features)")
    print("median rank-ICC(1,1) | share of features with rank-ICC >= 0.75 | median Lin CCC")
    header = f"{'pair':<20}" + "".join(f"{'rad ' + s:>18}" for s in radiomics_spacings)
    print(header)
    for pair, by_spacing in summary.items():
        cells = "".join(
            f"{a['median_rank_icc']:>6.2f} {a['share_rank_icc_good']:>5.2f} {a['median_ccc']:>5.2f}"
            for a in by_spacing.values()
        )
        print(f"{pair:<20}{cells}")
    print("\nmean seconds per study and radiomics spacing (4 ROIs), by image spacing:")
    for spacing in spacings:
        cells = "  ".join(
            f"{s}: {seconds[f'extract_{spacing}_{s}']:.2f}" for s in radiomics_spacings
        )
        print(f"  {spacing} mm (render {seconds[f'render_{spacing}']:.1f} s): {cells}")

    write_json(
        args.out,
        {
            "part": "radiomics",
            "command": "python benchmarks/resolution_study.py " + " ".join(sys.argv[1:]),
            "preset": args.preset,
            "seed": args.seed,
            "n_studies": len(rows),
            "studies_per_site": {"A": len(rows) - half, "B": half},
            "pairs_mm": {k: list(v) for k, v in PAIRS.items()},
            "radiomics_spacings_mm": radiomics_spacings,
            "agreement": summary,
            "mean_seconds_per_study": seconds,
            "failures": failures,
            "wall_seconds": round(wall, 1),
            "workers": args.workers,
            "load_average_1min": {"start": load_start, "end": load_average()},
            "environment": environment(),
        },
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parts = parser.add_subparsers(dest="part", required=True)
    radiomics = parts.add_parser("radiomics", help="feature agreement between pixel spacings")
    radiomics.add_argument("--studies", type=int, default=48)
    radiomics.add_argument("--preset", default="default")
    radiomics.add_argument("--seed", type=int, default=0)
    radiomics.add_argument(
        "--radiomics-spacings",
        nargs="+",
        default=list(RADIOMICS_SPACINGS),
        help="'none' (the image's own spacing) and/or radiomics spacings in mm",
    )
    radiomics.add_argument("--workers", type=int, default=2, help="0: in this process")
    radiomics.add_argument("--out", type=Path, default=RESULTS / "resolution_study.json")
    heads = parts.add_parser("heads", help="texture and deep heads' AUC by spacing")
    resolution_heads.add_arguments(heads)
    args = parser.parse_args(argv)
    if args.part == "heads":
        if min(args.train, args.test) < 4 or args.epochs < 1:
            parser.error("--train and --test must be >= 4 (both classes twice) and --epochs >= 1")
        return resolution_heads.run_heads(args)
    if args.studies < 6:
        parser.error("--studies must be >= 6 (agreement over fewer studies means nothing)")
    if not math.isfinite(args.workers) or args.workers < 0:
        parser.error("--workers must be >= 0")
    return {"radiomics": run_radiomics}[args.part](args)


if __name__ == "__main__":
    sys.exit(main())
