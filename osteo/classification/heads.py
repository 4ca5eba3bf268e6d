"""Fusion-head registry: which inputs a classifier uses and how it combines them.

A head name is any non-empty subset of the inputs ``deep`` (the bilateral CNN's features),
``texture`` (radiomics) and ``clinical`` (age, sex, weight), joined by ``_`` in that canonical
order: ``clinical``, ``texture``, ``deep``, ``texture_clinical``, ``deep_clinical``,
``deep_texture``, ``deep_texture_clinical``. Any order is accepted and canonicalised
(``clinical_deep`` -> ``deep_clinical``); ``all`` is ``deep_texture_clinical``.

Every head declares ``inputs``. A head without ``deep`` never needs the CNN or the images, so
the data module skips loading them and the Lightning module builds no encoder.
:func:`head_inputs` answers that question from the name alone, without building anything.
:func:`parse_head` checks a name once and returns a :class:`HeadSpec` (canonical name and
inputs) that settings carry, so later steps (the Lightning module, the data module) use it as is
instead of checking the name again.

The built-in head, :class:`FusionHead`: each used input gets a small branch (LayerNorm for the
deep features, whose scale drifts while the CNN trains; texture and clinical arrive already
standardised with training-split statistics) projected to ``hidden`` so a 3-feature clinical
vector is not drowned by 660 texture features; the branches are concatenated and an MLP gives
one logit, plus optionally a T-score (multi-task regression).

Custom heads register with :func:`register_head`; they must accept the keyword arguments of
:func:`create_head` and expose ``inputs`` and ``forward(features) -> {"logit", ["tscore"]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from osteo.registry import Registry

__all__ = [
    "CUSTOM_HEADS",
    "HEAD_ALIASES",
    "INPUTS",
    "FusionHead",
    "HeadSpec",
    "canonical_head_name",
    "create_head",
    "head_inputs",
    "list_heads",
    "parse_head",
    "register_head",
]

INPUTS = ("deep", "texture", "clinical")  # canonical order
HEAD_ALIASES = {"all": "deep_texture_clinical"}

HeadFactory = Callable[..., nn.Module]
# Custom heads (``register_head``); the input subsets ("deep_clinical") are built in.
CUSTOM_HEADS: Registry[HeadFactory] = Registry("head")


def register_head(name: str, inputs: set[str] | frozenset[str] | tuple[str, ...]):
    """Register a custom head class/factory under ``name``, using ``inputs``."""
    inputs = frozenset(inputs)
    if not inputs or not inputs <= set(INPUTS):
        raise ValueError(f"head {name!r}: inputs must be a non-empty subset of {INPUTS}")

    if name in HEAD_ALIASES or _parse(name) is not None:
        raise ValueError(f"head {name!r} is already defined (a built-in input subset)")
    return CUSTOM_HEADS.register(name, inputs=inputs)


def _parse(name: str) -> tuple[str, ...] | None:
    """The inputs of a subset name in canonical order, or None if it is not one."""
    parts = HEAD_ALIASES.get(name, name).split("_")
    if not parts or len(set(parts)) != len(parts) or not set(parts) <= set(INPUTS):
        return None
    return tuple(i for i in INPUTS if i in parts)


@dataclass(frozen=True)
class HeadSpec:
    """A checked head name: its canonical ``name`` and the ``inputs`` it uses."""

    name: str
    inputs: frozenset[str]
    custom: bool = False  # registered with register_head (else a built-in input subset)


def parse_head(name: str) -> HeadSpec:
    """Check the head ``name`` (the one place that does) and return its :class:`HeadSpec`."""
    if name in CUSTOM_HEADS:
        return HeadSpec(name, frozenset(CUSTOM_HEADS.info(name)["inputs"]), custom=True)
    parsed = _parse(name)
    if parsed is None:
        custom = f", or one of {sorted(CUSTOM_HEADS)}" if CUSTOM_HEADS else ""
        raise ValueError(
            f"unknown head {name!r}: use a subset of {INPUTS} joined by '_' "
            f"(e.g. 'deep_clinical') or 'all'{custom}"
        )
    return HeadSpec("_".join(parsed), frozenset(parsed))


def canonical_head_name(name: str) -> str:
    """``clinical_deep`` -> ``deep_clinical``; ``all`` -> ``deep_texture_clinical``."""
    return parse_head(name).name


def head_inputs(name: str) -> frozenset[str]:
    """The inputs the head ``name`` uses (``"deep" in head_inputs(n)`` = needs images)."""
    return parse_head(name).inputs


def list_heads() -> list[str]:
    """Every canonical subset name plus the registered custom heads."""
    names = []
    for mask in range(1, 2 ** len(INPUTS)):
        names.append("_".join(i for k, i in enumerate(INPUTS) if mask >> k & 1))
    return sorted(names, key=lambda n: (len(n.split("_")), n)) + sorted(CUSTOM_HEADS)


def create_head(
    head: str | HeadSpec,
    deep_dim: int = 0,
    texture_dim: int = 0,
    clinical_dim: int = 3,
    hidden: int = 64,
    dropout: float = 0.2,
    aux_tscore: bool = False,
    **kwargs,
) -> nn.Module:
    """Build ``head`` (a name, or a :class:`HeadSpec` already checked by :func:`parse_head`).
    Dimensions of inputs it does not use are ignored."""
    spec = head if isinstance(head, HeadSpec) else parse_head(head)
    dims = {"deep": deep_dim, "texture": texture_dim, "clinical": clinical_dim}
    if spec.custom:
        factory = CUSTOM_HEADS.get(spec.name)
        return factory(
            deep_dim=deep_dim,
            texture_dim=texture_dim,
            clinical_dim=clinical_dim,
            hidden=hidden,
            dropout=dropout,
            aux_tscore=aux_tscore,
            **kwargs,
        )
    inputs = [i for i in INPUTS if i in spec.inputs]  # canonical order, as the name spells it
    return FusionHead(
        {i: dims[i] for i in inputs},
        hidden=hidden,
        dropout=dropout,
        aux_tscore=aux_tscore,
        **kwargs,
    )


class FusionHead(nn.Module):
    """Concatenate per-input branches, then an MLP -> logit (and optionally a T-score)."""

    def __init__(
        self,
        input_dims: Mapping[str, int],
        hidden: int = 64,
        dropout: float = 0.2,
        aux_tscore: bool = False,
        project: bool = True,
    ) -> None:
        super().__init__()
        unknown = set(input_dims) - set(INPUTS)
        if not input_dims or unknown:
            raise ValueError(f"input_dims must use keys from {INPUTS}, got {list(input_dims)}")
        for key, dim in input_dims.items():
            if int(dim) <= 0:
                raise ValueError(f"head uses {key!r} but its dimension is {dim}")
        self.input_dims = {k: int(input_dims[k]) for k in INPUTS if k in input_dims}
        self.inputs = frozenset(self.input_dims)
        self.aux_tscore = aux_tscore

        self.branches = nn.ModuleDict()
        width = 0
        for key, dim in self.input_dims.items():
            layers: list[nn.Module] = [nn.LayerNorm(dim)] if key == "deep" else []
            if project:
                layers += [nn.Linear(dim, hidden), nn.ReLU(inplace=True)]
            self.branches[key] = nn.Sequential(*layers) if layers else nn.Identity()
            width += hidden if project else dim

        self.trunk = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(width, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(hidden, 1)
        self.tscore = nn.Linear(hidden, 1) if aux_tscore else None

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``features[name]``: ``[B, dim]`` for each used input -> ``logit`` ``[B]``."""
        parts = []
        for key, dim in self.input_dims.items():
            if key not in features:
                raise KeyError(f"head uses {key!r} but the batch has no {key!r} features")
            x = features[key]
            if x.ndim != 2 or x.shape[1] != dim:
                raise ValueError(
                    f"{key!r} features have shape {tuple(x.shape)}, head expects [B, {dim}]"
                )
            parts.append(self.branches[key](x))
        hidden = self.trunk(torch.cat(parts, dim=1))
        out = {"logit": self.classifier(hidden).squeeze(1)}
        if self.tscore is not None:
            out["tscore"] = self.tscore(hidden).squeeze(1)
        return out
