"""What a run will do, said before it starts: the stages, run or reuse, and a time estimate.

The estimate comes from this machine's own earlier runs: after each run the seconds per study
(per study and epoch for the training stages) of every stage that ran are kept in
``<cache_dir>/timings.json`` under a machine tag (CPU type and count, accelerator); the next
run multiplies the medians by its cohort size. Before the first run there is no estimate, and
the header says so.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

from omegaconf import DictConfig

from osteo.config import crop_geometry
from osteo.files import write_json_atomic

__all__ = [
    "stage_names",
    "count_studies",
    "format_run_header",
    "record_timings",
    "TIMINGS_FILE",
]

PIPELINE_STAGES = ("data", "segmentation", "roi", "radiomics", "classifier", "evaluation")
TIMINGS_FILE = "timings.json"
MAKE_COHORT = "data (making the synthetic cohort)"
_KEEP = 5  # the last runs per stage whose rates make the median


def stage_names(cfg: DictConfig) -> tuple[str, ...]:
    return PIPELINE_STAGES[:2] if cfg.task == "segmentation" else PIPELINE_STAGES


def count_studies(cfg: DictConfig) -> int | None:
    """Studies in the configured manifest (or the synthetic cohort it will make), if known."""
    path = Path(cfg.data.manifest)
    if path.is_file():
        with path.open(encoding="utf-8", errors="replace") as stream:
            return max(sum(1 for line in stream if line.strip()) - 1, 0)
    if cfg.data.synthetic.enabled:
        from osteo.data.synthetic.presets import get_preset

        syn = cfg.data.synthetic
        return syn.n_studies if syn.n_studies is not None else get_preset(syn.preset).total
    return None


def _machine_tag(cfg: DictConfig) -> str:
    return f"{platform.machine()}-{os.cpu_count()}cpu-{cfg.trainer.accelerator}"


def _epochs(cfg: DictConfig, stage: str) -> int:
    """The factor a stage's time grows with besides the study count (epochs of training)."""
    if stage == "segmentation" and cfg.segmentation.masks == "predict":
        return 0 if cfg.segmentation.checkpoint else int(cfg.segmentation.max_epochs)
    if stage == "classifier":
        return int(cfg.train.max_epochs)
    return 0


def _pixels(cfg: DictConfig, stage: str) -> float:
    """A training step's input size, relative to 100 x 100 pixels (compute grows with it)."""
    if stage == "segmentation":
        rows, columns = cfg.segmentation.spatial_size
        return rows * columns / 1e4
    if stage == "classifier":
        return 2 * crop_geometry(cfg.train).pixels ** 2 / 1e4  # two hips per study
    return 1.0


def _units(cfg: DictConfig, stage: str, n_studies: int) -> float:
    # A per-study part plus a training part that grows with epochs and input size; one rate
    # covers both, so a run with other settings gets a rough but proportionate estimate.
    return n_studies * (1 + _epochs(cfg, stage) * _pixels(cfg, stage))


def _read_timings(cache_dir: Path) -> dict:
    try:
        data = json.loads((cache_dir / TIMINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_timings(cfg: DictConfig, cache_dir: Path, records, n_studies: int | None) -> None:
    """Keep each stage's seconds per unit of this run (only stages that ran, not reuses)."""
    if not n_studies:
        return
    data = _read_timings(cache_dir)
    machine = data.setdefault(_machine_tag(cfg), {})
    for record in records:
        if record.status != "ran" or record.wall_s <= 0:
            continue
        made = record.name == "data" and record.note.startswith("made")
        rates = machine.setdefault(MAKE_COHORT if made else record.name, [])
        rates.append(round(record.wall_s / _units(cfg, record.name, n_studies), 6))
        del rates[:-_KEEP]
    write_json_atomic(cache_dir / TIMINGS_FILE, data)


def _what(
    cfg: DictConfig,
    stage: str,
    n_studies: int | None,
    same_as_last: dict | None,
    inputs: frozenset[str] | None = None,
) -> str:
    from osteo.classification.heads import head_inputs

    if same_as_last is not None and same_as_last.get(stage) in ("ran", "reused", "skipped"):
        return "reuse (the last run in this folder had the same config)"
    size = f"{n_studies} studies" if n_studies is not None else "studies"
    if stage == "data":
        if Path(cfg.data.manifest).is_file():
            return f"read {cfg.data.manifest} ({size}), make the splits"
        syn = cfg.data.synthetic
        folder = Path(cfg.data.manifest).parent
        return f"make the synthetic cohort '{syn.preset}' ({size}) in {folder}"
    if stage == "segmentation":
        seg = cfg.segmentation
        if seg.masks == "manifest":
            return "masks from the manifest"
        if seg.checkpoint:
            return f"predict masks with {seg.checkpoint} (cached masks reused)"
        return (
            f"train the U-Net ({seg.max_epochs} epochs) or reuse it from the cache; "
            "predict masks (cached masks reused)"
        )
    if inputs is None:  # a header printed without the run's checked settings
        inputs = head_inputs(cfg.model.head)
    if stage == "radiomics" and "texture" not in inputs:
        return "skipped (the head uses no texture)"
    if stage == "classifier":
        return (
            f"train the '{cfg.model.head}' head ({cfg.train.max_epochs} epochs) "
            "or reuse it from the run folder"
        )
    return "run (or reuse what the cache holds)"


def _last_run_statuses(cfg: DictConfig, run_dir: Path) -> dict | None:
    """Stage statuses of the finished run in ``run_dir`` when its config equals this one."""
    from osteo.config import to_yaml

    try:
        same = (run_dir / "config.yaml").read_text(encoding="utf-8") == to_yaml(cfg)
        stages = json.loads((run_dir / "stages.json").read_text(encoding="utf-8"))["stages"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not same or stages.get(stage_names(cfg)[-1], {}).get("status") not in ("ran", "reused"):
        return None
    return {name: entry.get("status") for name, entry in stages.items()}


def _estimate(cfg, cache_dir: Path, names, n_studies, same_as_last) -> str:
    if same_as_last is not None:
        return "a few seconds (every stage should be reused)"
    if n_studies is None:
        return "no estimate (the cohort size is not known before the data stage)"
    rates = _read_timings(cache_dir).get(_machine_tag(cfg), {})
    # Making the synthetic cohort and reading a manifest are timed apart: minutes vs seconds.
    keys = {n: n for n in names}
    if not Path(cfg.data.manifest).is_file():
        keys["data"] = MAKE_COHORT
    missing = [n for n in names if not rates.get(keys[n])]
    if len(missing) == len(names):
        timings = cache_dir / TIMINGS_FILE
        return f"no estimate yet (no earlier run on this machine; timings go to {timings})"
    known = [n for n in names if n not in missing]
    seconds = sum(statistics.median(rates[keys[n]]) * _units(cfg, n, n_studies) for n in known)
    shown = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    # A stage never timed here (e.g. reading a manifest after the first run made the cohort)
    # leaves the others' estimate standing; the header names what it leaves out.
    unknown = f", plus {', '.join(missing)} (not yet timed here)" if missing else ""
    return f"about {shown} if nothing is cached (from earlier runs on this machine){unknown}"


def format_run_header(
    cfg: DictConfig, run_dir: Path, cache_dir: Path, inputs: frozenset[str] | None = None
) -> str:
    """The plan printed before a run; ``inputs`` are the head's inputs as check_config parsed
    them (parsed from ``model.head`` when not given)."""
    names = stage_names(cfg)
    n_studies = count_studies(cfg)
    same_as_last = _last_run_statuses(cfg, run_dir)
    lines = [f"osteo run '{cfg.name}' -> {run_dir}: {len(names)} stages"]
    lines += [
        f"  {k}. {name:<13}{_what(cfg, name, n_studies, same_as_last, inputs)}"
        for k, name in enumerate(names, start=1)
    ]
    lines.append(f"  time: {_estimate(cfg, cache_dir, names, n_studies, same_as_last)}")
    return "\n".join(lines)
