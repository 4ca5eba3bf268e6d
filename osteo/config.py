"""Typed run configuration: YAML files with a base, dotlist overrides, strict validation.

A config file is plain YAML (OmegaConf, safe loading: no code is executed). It may name a
``base`` file, relative to itself, whose values it extends; bases may chain. Command-line
``key=value`` overrides are applied last. The result is merged into the dataclass schema
below, so an unknown key, a wrong type or a value outside a fixed set of choices fails at
start-up with the key's full path, the bad value and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

__all__ = [
    "ConfigError",
    "check_run_name",
    "RUN_NAME_PATTERN",
    "OsteoConfig",
    "load_config",
    "config_from_dict",
    "save_config",
    "to_yaml",
    "PATH_KEYS",
    "DATA_PATH_KEYS",
    "REDACTED",
    "redacted_config",
    "read_yaml_file",
    "CropGeometry",
    "crop_geometry",
]

BASE_KEY = "base"
# Run names become folder names and W&B run names: letters, digits, '.', '_' and '-', not
# starting with '.' or '-' (no hidden folders, no option-like names, no '/' or '..' escape).
RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
# OmegaConf resolvers a config may call. ``oc.env`` is not one: a shared config could copy any
# environment variable (an API key) into config.yaml and the W&B run name.
ALLOWED_RESOLVERS: frozenset[str] = frozenset()
# Settings that hold a file or folder path; a path can carry a patient's name or a study's
# accession number. W&B never gets any of them; config.yaml in the run folder gets the data
# locations (DATA_PATH_KEYS) redacted unless logger.log_identifiers=true.
PATH_KEYS = (
    "data.manifest",
    "data.split.splits_file",
    "segmentation.checkpoint",
    "model.weights_path",
    "radiomics.params",
    "output_dir",
    "cache_dir",
)
DATA_PATH_KEYS = ("data.manifest", "data.split.splits_file")
REDACTED = "<redacted>"
_RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key and the problem."""


def check_run_name(name: str) -> None:
    if not RUN_NAME_PATTERN.match(name):
        raise ConfigError(
            f"Invalid value for config key 'name': {name!r}; expected 1-200 letters, digits, "
            "'.', '_' or '-', not starting with '.' or '-' (it names a folder in output_dir)"
        )


def _refuse_resolvers(node: Any, path: str = "") -> None:
    """Refuse ``${resolver:...}`` calls other than ALLOWED_RESOLVERS; ``${key}`` is fine."""
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_resolvers(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_resolvers(value, f"{path}[{i}]")
    elif isinstance(node, str):
        for name in _RESOLVER_CALL.findall(node):
            if name not in ALLOWED_RESOLVERS:
                raise ConfigError(
                    f"Invalid value for config key '{path}': {node!r} calls the resolver "
                    f"'{name}', which configs may not use (oc.env would copy environment "
                    "variables into config.yaml and W&B); write the value itself"
                )


@dataclass
class SyntheticConfig:
    """How to make the built-in synthetic cohort when the manifest does not exist yet."""

    enabled: bool = True  # make the cohort when `data.manifest` is missing
    preset: Literal["tiny", "quickstart", "default", "paper"] = "default"
    n_studies: int | None = None  # override the preset's size
    seed: int = 0
    format: Literal["dicom", "png"] = "dicom"
    workers: int = 2
    # Pixel spacing of the images: null = each site's archive spacing (the default preset's
    # 0.7 / 1.0 mm), a number = both sites at that spacing (0.1-1.5 mm); fullres = each
    # site's native detector spacing (~0.14-0.15 mm). See docs/synthetic.md.
    spacing_mm: float | None = None
    fullres: bool = False
    # The site-drop study: the external test set is the internal test set's studies rendered
    # again at site B (benchmarks/site_swap.py; docs/synthetic.md, "Site swap").
    site_swap: bool = False
    # Without data.manifest the cohort lives in <root>/<preset>[-n<N>]-seed<seed>-<format>
    # [-sp<mm>mm|-fullres][-siteswap]/, one folder per setting, so a changed preset makes its
    # own cohort.
    root: str = "data/synthetic"


@dataclass
class SplitConfig:
    """Patient-level splits (see osteo.data.manifest.make_splits)."""

    internal_test_from: str | None = "2008-01-01"  # inclusive study_date range, YYYY-MM-DD
    internal_test_to: str | None = "2009-06-30"
    internal_test_sites: list[str] = field(default_factory=lambda: ["A"])
    external_test_sites: list[str] = field(default_factory=lambda: ["B"])
    val_fraction: float = 0.15
    seed: int = 0
    # Reuse a split table (study_id, split) instead of computing one; makes a run reproducible.
    splits_file: str | None = None


@dataclass
class DataConfig:
    # Your manifest CSV; null = the built-in synthetic cohort of data.synthetic (made when
    # missing; see osteo.data.synthetic.location). load_config fills in its path.
    manifest: str | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    check_files: bool = True  # verify every image_path/mask_path exists when loading
    # Manifest paths must lie inside the manifest's folder (a shared manifest cannot make a
    # run read /etc/passwd or another project's files) unless this is set.
    allow_outside_paths: bool = False
    # Largest image decoded (rows x columns / 1e6), checked from the header before decoding.
    max_megapixels: float = 60.0
    # What to do with a missing age/sex/weight: "error" lists the rows; "median" imputes
    # the training split's median (mode for sex) and records how many were imputed.
    clinical_missing: Literal["error", "median"] = "error"


@dataclass
class TrainerConfig:
    """Lightning Trainer settings shared by the segmentation and classification stages."""

    accelerator: str = "auto"  # cpu, gpu, mps, auto
    devices: Any = "auto"  # an int, a list of device indices, or "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto, ddp, ddp_spawn, ddp_find_unused_parameters_true, ...
    precision: Literal[
        "32", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64", "64-true"
    ] = "32"
    deterministic: bool = False
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    # Passed to lightning.Trainer under their own names; None leaves Lightning's default.
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str | None = None  # "norm" or "value"
    accumulate_grad_batches: int = 1
    limit_train_batches: Any = None  # an int (batches) or a float (fraction of them)
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    limit_predict_batches: Any = None
    fast_dev_run: Any = False  # True or a number of batches: one quick pass of the loops
    max_time: str | None = None  # "DD:HH:MM:SS": stop training after this long
    benchmark: bool | None = None
    # Any other lightning.Trainer argument by name (e.g. {num_sanity_val_steps: 0}); checked
    # against the Trainer's signature at start-up (osteo.pipeline.distributed).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SegmentationConfig:
    """Femur segmentation: a MONAI 2D network trained on the manifest rows with masks."""

    # "predict": train (or load) the network and predict every mask; "manifest": use the
    # manifest's mask_path of every study instead (reference or manual masks).
    masks: Literal["predict", "manifest"] = "predict"
    network: Literal["unet", "basic_unet", "attention_unet", "segresnet"] = "unet"
    channels: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    num_res_units: int = 1
    dropout: float = 0.0
    # The network sees the radiograph resampled to this spacing and padded/cropped to this
    # size: 2 mm x 224 px covers a 45 cm field, larger than a pelvis film (35 x 43 cm).
    spacing_mm: float = 2.0
    spatial_size: list[int] = field(default_factory=lambda: [224, 224])
    checkpoint: str | None = None  # a trained model to use instead of training one
    max_train_studies: int | None = 300  # masks needed for training; more adds little
    max_val_studies: int | None = 100
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-5
    max_epochs: int = 30
    num_workers: int = 0
    predict_batch_size: int = 8


@dataclass
class RoiConfig:
    """ROI boxes placed from each femur mask (sizes in mm)."""

    neck_size_mm: float = 12.0
    cortex_size_mm: float = 12.0
    neck_cortex_margin_mm: float = 2.0
    neck_min_fraction: float = 0.6
    cortex_below_lesser_trochanter_mm: float = 25.0
    cortex_depth_mm: float = 2.5  # box centre inside the medial bone edge (mid-cortex)
    # Where the lesser trochanter is sought (and placed when the mask does not show it): this
    # far down the shaft from the neck-shaft junction, for a 30 mm wide neck, +- the window.
    lesser_trochanter_below_junction_mm: float = 28.0
    lesser_trochanter_window_mm: float = 10.0
    # QA images: a contact sheet per split, or also one PNG per study (named by a hash).
    overlays: Literal["none", "sheet", "per_study"] = "sheet"
    workers: int = 2  # processes placing ROIs


@dataclass
class RadiomicsConfig:
    """Texture features of the four ROIs (pyradiomics parameter file, worker processes)."""

    params: str = "configs/radiomics/default.yaml"
    workers: int = 2


@dataclass
class ModelConfig:
    """The classifier (see osteo.classification.hparams.ClassifierConfig for the meanings).

    ``head`` is any subset of deep, texture and clinical joined by '_' (``all`` = all three);
    ``backbone`` one of osteo.classification.list_backbones(). Both are checked against the
    registries at start-up.
    """

    head: str = "deep_texture_clinical"
    backbone: str = "small_cnn"
    combine: Literal["concat", "difference", "max"] = "concat"
    embed_dim: int = 128
    pretrained: bool = False
    weights_path: str | None = None  # a local backbone state dict; nothing is downloaded
    hidden: int = 64
    dropout: float = 0.2
    aux_tscore_weight: float = 0.0  # > 0 adds T-score regression (multi-task)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: Literal["none", "cosine", "onecycle", "plateau"] = "cosine"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.01
    plateau_patience: int = 3
    focal_gamma: float = 2.0


@dataclass
class TrainConfig:
    """How the classifier is trained and what it sees of each hip."""

    max_epochs: int = 15
    batch_size: int = 32
    num_workers: int = 0
    # Class imbalance: weight positives in the loss, draw them more often, or focal loss.
    class_balance: Literal["pos_weight", "sampler", "focal", "none"] = "pos_weight"
    # The square hip crop the CNN sees: ``crop_mm`` a side, sampled every ``crop_spacing_mm``;
    # its pixel count is derived (``crop_geometry``): round(crop_mm / crop_spacing_mm).
    crop_mm: float = 110.4
    crop_spacing_mm: float = 1.15
    # Removed (it made the crop's spacing implicit): set crop_spacing_mm instead. Kept in the
    # schema only so an old config gets an error that says what to write.
    crop_size: int | None = None
    # Early stopping on val AUC (epochs without improvement); 0 turns it off.
    early_stopping_patience: int = 0
    threshold_method: Literal["youden", "sensitivity"] = "youden"
    target_sensitivity: float | None = None  # with threshold_method=sensitivity
    n_bootstrap: int = 2000


@dataclass
class EvaluationConfig:
    """The pre-specified analysis and the clinical read-outs (docs/evaluation.md)."""

    # The primary model of tools/compare.py and the models/readers compared with it (empty:
    # every other model and every reader); never chosen from test results.
    primary: str = "fusion_all"
    comparisons: list[str] = field(default_factory=list)
    # Recalibration fitted on val only, applied unchanged to the test sets.
    recalibration: Literal["none", "platt", "isotonic"] = "none"
    # Two-threshold triage chosen on val: rule out at NPV >= triage_npv, rule in at PPV >=.
    triage_npv: float = 0.95
    triage_ppv: float = 0.95
    # Decision curve: threshold probabilities from 0.01 to this, in steps of 0.01.
    dca_max_threshold: float = 0.6


@dataclass
class LoggerConfig:
    """W&B logging; offline by default so no account is needed."""

    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "osteo"
    # Patient identifiers never leave the machine unless this is set.
    log_identifiers: bool = False


@dataclass
class OsteoConfig:
    """The whole run configuration. Sections are added as pipeline stages land."""

    name: str = "run"
    task: Literal["classification", "segmentation"] = "classification"
    output_dir: str = "runs"
    # Content-addressed stage outputs (models, masks, features) shared by all runs.
    cache_dir: str = "cache"
    seed: int = 0
    resume: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    roi: RoiConfig = field(default_factory=RoiConfig)
    radiomics: RadiomicsConfig = field(default_factory=RadiomicsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


def read_yaml_file(path: Path, error: type[Exception], kind: str) -> Any:
    """The YAML document in ``path``, read safely: config and sweep files are data and can never
    execute code. A missing file or bad YAML raises ``error`` naming the ``kind`` of file."""
    if not path.is_file():
        raise error(f"{kind} not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise error(f"{kind} {path} is not valid YAML: {err}") from err


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml_file(path, ConfigError, "Config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {path} must hold a mapping at the top, got {type(data).__name__}"
        )
    return data


def _load_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"Config files extend each other in a loop: {chain}")
    data = _read_yaml(path)
    base_name = data.pop(BASE_KEY, None)
    node = OmegaConf.create(data)
    if base_name is None:
        return node
    if not isinstance(base_name, str):
        raise ConfigError(f"{path}: '{BASE_KEY}' must be a file name, got {base_name!r}")
    base = _load_with_bases(path.parent / base_name, (*seen, path))
    return OmegaConf.merge(base, node)


def _schema_keys(node: Any) -> list[str]:
    try:
        return sorted(str(k) for k in node.keys())
    except Exception:  # noqa: BLE001 - only used to enrich an error message
        return []


def _explain(err: OmegaConfBaseException, schema: DictConfig, source: str) -> ConfigError:
    """Turn an OmegaConf error into one message with the full key and what was expected."""
    full_key = getattr(err, "full_key", None) or getattr(err, "key", None) or "?"
    if isinstance(err, ConfigKeyError):
        parent_path = full_key.rsplit(".", 1)[0] if "." in full_key else ""
        parent = OmegaConf.select(schema, parent_path) if parent_path else schema
        valid = ", ".join(_schema_keys(parent))
        where = f"'{parent_path}'" if parent_path else "the top level"
        return ConfigError(
            f"Unknown config key '{full_key}' ({source}). Valid keys at {where}: {valid}"
        )
    msg = str(err).splitlines()[0]
    return ConfigError(f"Invalid value for config key '{full_key}' ({source}): {msg}")


def _merge_into_schema(schema: DictConfig, node: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(schema, node)
    except (ConfigKeyError, ValidationError, OmegaConfBaseException) as err:
        raise _explain(err, schema, source) from None


def _parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"Override '{item}' is not of the form key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise ConfigError(f"Could not parse overrides {overrides}: {err}") from None


def redacted_config(cfg: DictConfig, keys: tuple[str, ...] = PATH_KEYS) -> dict[str, Any]:
    """The resolved config as a plain dict with the values of ``keys`` (where set) redacted."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in keys:
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(leaf) is not None:
            node[leaf] = REDACTED
    return data


def _validate(cfg: OsteoConfig) -> None:
    """Checks that a type alone cannot express."""
    for key in DATA_PATH_KEYS:
        value = OmegaConf.select(OmegaConf.structured(cfg), key)
        if value is not None and REDACTED in str(value):
            raise ConfigError(
                f"Invalid value for config key '{key}': {value!r}; this config.yaml comes from "
                "a run folder, where data paths are redacted: give the path again, e.g. "
                f"{key}=/path/to/manifest.csv"
            )
    if not 0.0 < cfg.data.split.val_fraction < 1.0:
        raise ConfigError(
            f"Invalid value for config key 'data.split.val_fraction': "
            f"{cfg.data.split.val_fraction}; expected a fraction between 0 and 1 (exclusive)"
        )
    devices = cfg.trainer.devices
    if not (devices == "auto" or isinstance(devices, int | list) or str(devices).isdigit()):
        raise ConfigError(
            f"Invalid value for config key 'trainer.devices': {devices!r}; expected an "
            "integer, a list of device indices or 'auto'"
        )
    if len(cfg.segmentation.spatial_size) != 2:
        raise ConfigError(
            "Invalid value for config key 'segmentation.spatial_size': "
            f"{list(cfg.segmentation.spatial_size)}; expected two integers (rows, columns)"
        )
    for key in ("triage_npv", "triage_ppv"):
        if not 0.0 < getattr(cfg.evaluation, key) < 1.0:
            raise ConfigError(
                f"Invalid value for config key 'evaluation.{key}': "
                f"{getattr(cfg.evaluation, key)}; expected a value in (0, 1)"
            )
    if not 0.01 < cfg.evaluation.dca_max_threshold < 1.0:
        raise ConfigError(
            f"Invalid value for config key 'evaluation.dca_max_threshold': "
            f"{cfg.evaluation.dca_max_threshold}; expected a value in (0.01, 1)"
        )
    check_run_name(str(cfg.name))
    crop_geometry(cfg.train)
    if not cfg.data.max_megapixels > 0:
        raise ConfigError(
            f"Invalid value for config key 'data.max_megapixels': {cfg.data.max_megapixels}; "
            "expected a number > 0"
        )
    if cfg.data.synthetic.workers < 1:
        raise ConfigError(
            f"Invalid value for config key 'data.synthetic.workers': "
            f"{cfg.data.synthetic.workers}; expected an integer >= 1"
        )


@dataclass(frozen=True)
class CropGeometry:
    """The hip crop as configured: ``pixels`` a side, every ``spacing_mm``, ``span_mm`` wide."""

    pixels: int
    spacing_mm: float

    @property
    def span_mm(self) -> float:
        return self.pixels * self.spacing_mm


def crop_geometry(train: Any) -> CropGeometry:
    """The crop of ``train`` (a config section): ``crop_spacing_mm`` is the source of truth,
    the pixel count round(crop_mm / crop_spacing_mm); raises ``ConfigError`` naming the key."""
    if getattr(train, "crop_size", None) is not None:
        size = int(train.crop_size)
        raise ConfigError(
            f"Config key 'train.crop_size' ({size}) was replaced by 'train.crop_spacing_mm' "
            "(mm per crop pixel; the pixel count is round(train.crop_mm / "
            f"train.crop_spacing_mm)): for {size} px over {train.crop_mm:g} mm set "
            f"train.crop_spacing_mm={float(train.crop_mm) / size:.6g} and remove train.crop_size"
        )
    spacing, span = float(train.crop_spacing_mm), float(train.crop_mm)
    if not spacing > 0:
        raise ConfigError(
            f"Invalid value for config key 'train.crop_spacing_mm': {spacing}; expected mm > 0"
        )
    pixels = int(round(span / spacing))
    if pixels < 8:
        raise ConfigError(
            f"Invalid crop: train.crop_mm={span:g} over train.crop_spacing_mm={spacing:g} is "
            f"{pixels} px; expected at least 8 px (a smaller spacing or a larger crop_mm)"
        )
    return CropGeometry(pixels=pixels, spacing_mm=spacing)


def config_from_dict(data: dict[str, Any] | DictConfig, source: str = "dict") -> DictConfig:
    """Validate a plain mapping against the schema (used by tests and sweeps)."""
    schema = OmegaConf.structured(OsteoConfig)
    _refuse_resolvers(
        OmegaConf.to_container(data, resolve=False) if isinstance(data, DictConfig) else data
    )
    cfg = _merge_into_schema(schema, data, source)
    _validate(OmegaConf.to_object(cfg))
    return _resolve_manifest(cfg)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Load a config file (with its bases), apply ``key=value`` overrides, validate.

    Returns a typed ``DictConfig``: assigning an unknown key or a wrong type later also fails.
    """
    schema = OmegaConf.structured(OsteoConfig)
    cfg = schema
    if path is not None:
        cfg = _merge_into_schema(schema, _load_with_bases(Path(path)), f"from {path}")
    if overrides:
        cfg = _merge_into_schema(cfg, _parse_overrides(overrides), "from the command line")
    _refuse_resolvers(OmegaConf.to_container(cfg, resolve=False))
    try:
        OmegaConf.resolve(cfg)  # interpolations such as ${name} fail here, not mid-run
    except OmegaConfBaseException as err:
        raise _explain(err, schema, "while resolving interpolations") from None
    _validate(OmegaConf.to_object(cfg))
    return _resolve_manifest(cfg)


def cohort_folder_name(
    preset: str,
    seed: int,
    image_format: str,
    n_studies: int | None,
    spacing_mm: float | None = None,
    fullres: bool = False,
    site_swap: bool = False,
) -> str:
    """``<preset>[-n<N>]-seed<seed>-<format>[-sp<mm>mm|-fullres][-siteswap]``: a spacing
    component only when the images are not at the sites' archive spacing (the default)."""
    size = f"-n{int(n_studies)}" if n_studies is not None else ""
    spacing = ""
    if fullres:
        spacing = "-fullres"
    elif spacing_mm is not None:
        spacing = f"-sp{float(spacing_mm):g}mm"
    swap = "-siteswap" if site_swap else ""
    return f"{preset}{size}-seed{int(seed)}-{image_format}{spacing}{swap}"


def synthetic_manifest_path(root: str | Path, synthetic) -> Path:
    """``<root>/<preset>[-n<N>]-seed<seed>-<format>/manifest.csv`` for ``data.synthetic``."""
    name = cohort_folder_name(
        synthetic.preset,
        synthetic.seed,
        synthetic.format,
        synthetic.n_studies,
        synthetic.spacing_mm,
        bool(synthetic.fullres),
        bool(synthetic.site_swap),
    )
    return Path(root) / name / "manifest.csv"


def _resolve_manifest(cfg: DictConfig) -> DictConfig:
    """``data.manifest: null`` -> the synthetic cohort's own folder for ``data.synthetic``."""
    if cfg.data.manifest is None:
        synthetic = cfg.data.synthetic
        cfg.data.manifest = str(synthetic_manifest_path(synthetic.root, synthetic))
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def save_config(cfg: DictConfig, path: str | Path) -> Path:
    """Write the resolved config (atomically) so the run can be reproduced from it.

    Unless ``logger.log_identifiers=true`` the data locations (``DATA_PATH_KEYS``) are written
    as ``<redacted>``: a folder name such as ``/data/DOE_JANE_MRN123/`` stays off the run
    folder; rerunning from this file needs ``data.manifest=...`` again (a clear error says so).
    """
    from osteo.files import write_text_atomic

    if cfg.logger.log_identifiers:
        return write_text_atomic(path, to_yaml(cfg))
    return write_text_atomic(path, OmegaConf.to_yaml(redacted_config(cfg, DATA_PATH_KEYS)))
