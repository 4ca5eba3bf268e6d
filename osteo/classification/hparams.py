"""Hyper-parameters of :class:`~osteo.classification.module.OsteoporosisModule`.

A flat dataclass of plain values, so Lightning stores it in checkpoints as a dict that loads
with ``weights_only=True``, and ``load_from_checkpoint`` rebuilds the same module. Validation
happens here, at construction, so a bad choice fails before any data is read.

Schedule lengths come from the Trainer (``estimated_stepping_batches``), not from a
``max_epochs`` copy here, so they cannot disagree with ``trainer.max_epochs``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from osteo.classification.backbones import list_backbones
from osteo.classification.heads import HeadSpec, parse_head
from osteo.classification.siamese import COMBINE_MODES
from osteo.constants import TEST_SPLITS, TRAINING_SPLITS

__all__ = ["IMBALANCE_MODES", "SCHEDULERS", "ClassifierConfig", "classifier_config"]

SCHEDULERS = ("none", "cosine", "onecycle", "plateau")
IMBALANCE_MODES = ("none", "pos_weight", "focal")


@dataclass
class ClassifierConfig:
    # What the model sees and how it is built.
    head: str = "deep_texture_clinical"  # see osteo.classification.heads
    backbone: str = "small_cnn"  # see osteo.classification.backbones.list_backbones()
    combine: str = "concat"  # concat | difference | max (see siamese.py)
    embed_dim: int = 128  # per side
    pretrained: bool = False  # True needs weights_path (nothing is downloaded)
    weights_path: str | None = None  # local backbone state dict
    texture_dim: int = 660  # radiomics features per study
    clinical_dim: int = 3  # age, sex, weight
    hidden: int = 64
    dropout: float = 0.2
    aux_tscore_weight: float = 0.0  # > 0 adds the T-score regression output and loss

    # Optimisation.
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"  # none | cosine | onecycle | plateau
    warmup_epochs: float = 0.0  # linear warm-up (none, cosine; onecycle's pct_start)
    min_lr_ratio: float = 0.01  # cosine floor, as a fraction of lr
    plateau_patience: int = 3  # epochs without val/auc gain before halving lr

    # Class imbalance: "pos_weight" weights positives by pos_weight (n_neg / n_pos of the
    # training split, set by the data module); "focal" uses the focal loss instead.
    imbalance: str = "pos_weight"
    pos_weight: float | None = None
    focal_gamma: float = 2.0

    # Names of the test dataloaders, in order: metrics are logged as "<name>/auc" etc.
    test_splits: list[str] = field(default_factory=lambda: list(TEST_SPLITS))

    @property
    def head_spec(self) -> HeadSpec:
        """The head checked once by :func:`classifier_config`; carried, not re-checked.

        Kept out of the dataclass fields: the hyper-parameters saved in checkpoints (and the
        keys built from them) stay the plain values above.
        """
        spec = self.__dict__.get("_head_spec")
        if spec is None or spec.name != self.head:  # built directly, or ``head`` reassigned
            spec = parse_head(self.head)
            self.__dict__["_head_spec"] = spec
        return spec

    @property
    def inputs(self) -> frozenset[str]:
        return self.head_spec.inputs

    @property
    def uses_images(self) -> bool:
        return "deep" in self.inputs


def classifier_config(config: Any = None, **overrides: Any) -> ClassifierConfig:
    """A validated :class:`ClassifierConfig` from a dataclass, a mapping (or DictConfig) and
    keyword overrides. An unknown key is an error that lists the known ones."""
    spec = None
    if config is None:
        values: dict[str, Any] = {}
    elif isinstance(config, ClassifierConfig):
        values = dataclasses.asdict(config)
        if "head" not in overrides:  # already checked: carry the parsed head over
            spec = config.__dict__.get("_head_spec")
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        values = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        values = dict(config)
    else:
        raise TypeError(f"config must be a dataclass or a mapping, got {type(config).__name__}")
    values.update(overrides)

    known = {f.name for f in dataclasses.fields(ClassifierConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown classifier settings {unknown}; known: {sorted(known)}")
    if "test_splits" in values:
        values["test_splits"] = [str(s) for s in values["test_splits"]]  # ListConfig, tuple
    cfg = ClassifierConfig(**values)
    _validate(cfg, spec)
    return cfg


def _validate(cfg: ClassifierConfig, spec: HeadSpec | None = None) -> None:
    if spec is None or spec.name != cfg.head:
        spec = parse_head(cfg.head)  # raises on an unknown head
    cfg.head = spec.name
    cfg.__dict__["_head_spec"] = spec
    choices = {
        "backbone": list_backbones(),
        "combine": COMBINE_MODES,
        "scheduler": SCHEDULERS,
        "imbalance": IMBALANCE_MODES,
    }
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise ValueError(f"{key}={getattr(cfg, key)!r}; choose one of {list(allowed)}")
    if cfg.pretrained and not cfg.weights_path and cfg.uses_images:
        raise ValueError("pretrained=True needs weights_path: osteo never downloads weights")
    if cfg.scheduler == "plateau" and cfg.warmup_epochs > 0:
        raise ValueError("warmup_epochs is not supported with scheduler='plateau'")
    if cfg.pos_weight is not None and cfg.pos_weight <= 0:
        raise ValueError(f"pos_weight must be > 0, got {cfg.pos_weight}")
    for key in ("embed_dim", "hidden", "clinical_dim"):
        if getattr(cfg, key) <= 0:
            raise ValueError(f"{key} must be > 0, got {getattr(cfg, key)}")
    if "texture" in cfg.inputs and cfg.texture_dim <= 0:
        raise ValueError(f"head {cfg.head!r} uses texture but texture_dim={cfg.texture_dim}")
    names = [*TRAINING_SPLITS, *cfg.test_splits]
    if len(set(names)) != len(names) or any(not n or "." in n for n in names):
        raise ValueError(
            f"test_splits must be unique non-empty names without '.', other "
            f"than train and val; got {cfg.test_splits}"
        )
    if not 0 <= cfg.dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.aux_tscore_weight < 0 or cfg.lr <= 0 or cfg.warmup_epochs < 0:
        raise ValueError("aux_tscore_weight and warmup_epochs must be >= 0 and lr > 0")
