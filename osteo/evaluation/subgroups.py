"""AUC within subgroups (sex, age band): does the model work equally well for everyone?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from osteo.evaluation.stats import check_binary_inputs, delong_auc

__all__ = ["DEFAULT_AGE_EDGES", "SubgroupAUC", "age_band_names", "age_bands", "subgroup_aucs"]

# Decades from 50: the screening population of the reference (DXA is rarely done before 50).
DEFAULT_AGE_EDGES = (50, 60, 70, 80)
MISSING_GROUP = "missing"


def age_band_names(edges: Sequence[float] = DEFAULT_AGE_EDGES) -> list[str]:
    """Band names in age order: ``<50``, ``50-59``, ..., ``>=80`` for the default edges.

    Bands are [edge_i, edge_i+1); integer edges give "50-59" style names, others "50.5-<60".
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.shape[0] == 0 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"age edges must be increasing numbers, got {edges.tolist()}")

    def fmt(value: float) -> str:
        return f"{value:g}"

    names = [f"<{fmt(edges[0])}"]
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        upper = (
            fmt(high - 1)
            if float(low).is_integer() and float(high).is_integer()
            else f"<{fmt(high)}"
        )
        names.append(f"{fmt(low)}-{upper}")
    names.append(f">={fmt(edges[-1])}")
    return names


def age_bands(ages, edges: Sequence[float] = DEFAULT_AGE_EDGES) -> np.ndarray:
    """Label each age with its band (see :func:`age_band_names`); NaN ages get ``"missing"``."""
    ages = np.asarray(ages, dtype=np.float64)
    names = age_band_names(edges)
    edges = np.asarray(edges, dtype=np.float64)
    index = np.searchsorted(edges, ages, side="right")  # NaN sorts last; replaced below
    labels = np.asarray(names, dtype=object)[np.minimum(index, len(names) - 1)]
    labels[np.isnan(ages)] = MISSING_GROUP
    return labels


@dataclass(frozen=True)
class SubgroupAUC:
    """AUC (DeLong CI) in one subgroup; ``auc`` is None with a ``note`` when not estimable."""

    group: str
    n: int
    n_positive: int
    auc: float | None
    auc_ci: tuple[float, float] | None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def subgroup_aucs(
    y_true, y_score, groups, confidence_level: float = 0.95, order: Sequence[str] | None = None
) -> list[SubgroupAUC]:
    """AUC with DeLong CI per value of ``groups``; missing values form the group ``"missing"``.

    Groups come in ``order`` where given (e.g. :func:`age_band_names`), otherwise sorted; groups
    absent from the data are left out, and ``"missing"`` comes last.

    Small subgroups are reported, not dropped: a group with fewer than 2 positives or 2
    negatives has ``auc=None`` and a note, so the table shows why it is empty.
    """
    labels, scores = check_binary_inputs(y_true, y_score, require_both_classes=False)
    groups = np.asarray(groups, dtype=object)
    if groups.shape != labels.shape:
        raise ValueError(
            f"groups has length {groups.shape[0]}, expected one per study ({labels.shape[0]})"
        )
    names = np.array(
        [
            MISSING_GROUP if g is None or (isinstance(g, float) and np.isnan(g)) else str(g)
            for g in groups
        ],
        dtype=object,
    )
    results = []
    present = set(names)
    ranked = [g for g in (order or []) if g in present]
    ranked += sorted(present - set(ranked) - {MISSING_GROUP})
    ranked += [MISSING_GROUP] if MISSING_GROUP in present else []
    for name in ranked:
        mask = names == name
        n, n_positive = int(mask.sum()), int(labels[mask].sum())
        if min(n_positive, n - n_positive) < 2:
            results.append(
                SubgroupAUC(
                    name,
                    n,
                    n_positive,
                    None,
                    None,
                    f"needs >= 2 positives and >= 2 negatives "
                    f"(has {n_positive} and {n - n_positive})",
                )
            )
            continue
        estimate = delong_auc(labels[mask], scores[mask], confidence_level)
        results.append(SubgroupAUC(name, n, n_positive, estimate.auc, estimate.ci))
    return results
