"""What the radiograph shows of the bone: five cues per hip and the pelvis's density.

Each hip's cues follow that hip's own bone T-score (``tscore_bone_{side}``) linearly, plus
Gaussian noise fixed per patient (the same person's anatomy at every visit), so no single cue
gives the answer and the best possible use of all of them has a closed form
(``posterior_hips``). Strengths follow the literature:

- ``cti``: cortical thickness index of the femoral shaft, (D - d) / D (Dorr et al. 1993);
  correlates with hip BMD at r ~ 0.6 (Sah et al., Osteoporos Int 2007).
- ``trabecular_density``: projected BV/TV of the neck and head, the radiographic "density".
- ``trabecular_pattern``: the Singh-index-like state of the trabecular groups, in T units:
  Ward's triangle widens first, then the principal tensile group fades, then the secondary
  compressive, the principal compressive last (Singh et al., JBJS 1970; r ~ 0.4-0.7 with BMD).
- ``hurst``: the fractal (Hurst) exponent of the texture, weakly lower in osteoporosis
  (Benhamou et al., JBMR 2001; Pothuaud et al. 2000).
- ``calcar_mm``: medial (calcar) cortex of the neck and proximal shaft, which thins only
  modestly (Mayhew et al., Lancet 2005: the inferomedial cortex is preserved with age).

A cue's noise is half shared by the two hips of a patient (correlation ``CUE_SIDE_CORRELATION``):
what a cue shows besides bone mass (canal shape, cortical geometry, trabecular architecture)
is largely bilateral - lower-limb bones are symmetric to a few per cent (Auerbach and Ruff,
J Hum Evol 2006) - while each hip's projection and its own remodelling add independent noise.
A shared part also means two hips are not two independent looks.

Bone loss is systemic (generator version 2): ``pelvis_density``, the relative density of the
pelvis, sacrum and L5 (1.0 at T = 0), follows the patient's systemic T-score with its own noise,
so no region of the radiograph is a fixed reference. Areal BMD falls by about 10-12% of the
young-adult mean per T unit at the hip and spine (one young-adult SD ~0.12 g/cm2 on ~1.0
g/cm2; Looker et al., Osteoporos Int 1998): log density 0.11 per T (log-normal, so it stays
positive). Its noise (0.30 on the log scale, i.e. 2.7 T) makes it
correlate only ~0.36 with a hip T-score, weaker than DXA's spine-hip r ~0.6-0.7 (the T-score
discordance between sites; Woodson, J Clin Densitom 2000). A compromise, said plainly: the
projected pelvis mixes cortical shell, ilium, sacral ala and L5, and a stronger systemic cue
would pin the systemic T-score so well that age, sex and weight could no longer add the
0.01-0.03 AUC they add in reality (measured: benchmarks/synthetic_oracle_seeds.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from .nuisance import SIDES
from .population import (
    HIP_ASYMMETRY_SD,
    LABEL_THRESHOLD,
    SYSTEMIC_SD,
    probability_lowest,
)

__all__ = [
    "BONE_CUES",
    "CUE_SIDE_CORRELATION",
    "PELVIS_DENSITY",
    "BoneCue",
    "HipPosterior",
    "TrabecularAppearance",
    "cue_columns",
    "posterior_hips",
    "probability_of_label",
    "sample_bone_cues",
    "sample_pelvis_density",
    "trabecular_appearance",
]


@dataclass(frozen=True)
class BoneCue:
    name: str
    at_t0: float  # value at T = 0 (young adult mean)
    per_t: float  # change per T unit
    noise_sd: float  # what the cue does not share with the T-score

    def standardised(self, value: np.ndarray) -> np.ndarray:
        """The cue read as a (noisy) T-score estimate."""
        return (np.asarray(value) - self.at_t0) / self.per_t

    @property
    def noise_in_t(self) -> float:
        return self.noise_sd / self.per_t


# Version 1's noise levels gave each cue its published correlation with T (cti 0.62, density
# 0.70, pattern 0.70, hurst 0.34, calcar 0.45) but, all five together, an image-only oracle AUC
# of ~0.95, above what any image model reaches in the reference, and clinical data then added
# nothing. Version 2 scales every cue's noise by CUE_NOISE_SCALE (the cues keep their ranking)
# so that the image-only oracle sits at ~0.88-0.93 and age, sex and weight add 0.01-0.03, as
# in the reference (deep 0.878 -> deep + clinical 0.903 externally). Measured values:
# benchmarks/synthetic_oracle_seeds.py and docs/synthetic.md.
CUE_NOISE_SCALE = 1.55
CUE_SIDE_CORRELATION = 0.6
_V1_CUES = (
    ("cti", 0.52, 0.045, 0.065),
    ("trabecular_density", 0.30, 0.035, 0.041),
    ("trabecular_pattern", 0.0, 1.0, 1.17),
    ("hurst", 0.35, 0.025, 0.08),
    ("calcar_mm", 4.5, 0.35, 0.8),
)
BONE_CUES: tuple[BoneCue, ...] = tuple(
    BoneCue(name, at_t0, per_t, CUE_NOISE_SCALE * noise) for name, at_t0, per_t, noise in _V1_CUES
)
# On the log scale (density is positive and losses are relative): log density = 0.11 T + noise.
PELVIS_DENSITY = BoneCue("log_pelvis_density", 0.0, 0.11, 0.30)


def cue_columns() -> list[str]:
    """The table's per-hip cue columns, ``{cue}_{side}``."""
    return [f"{cue.name}_{side}" for cue in BONE_CUES for side in SIDES]


def sample_bone_cues(
    tscore_bone: dict[str, np.ndarray], cue_noise: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-hip cue values ``{cue}_{side}``.

    ``tscore_bone`` maps each side to that hip's bone T-score; ``cue_noise`` is standard normal
    of shape (n, n_cues, 3): the patient's shared component, then the right and left hips' own.
    """
    shared = np.sqrt(CUE_SIDE_CORRELATION)
    own = np.sqrt(1.0 - CUE_SIDE_CORRELATION)
    out = {}
    for k, cue in enumerate(BONE_CUES):
        for s, side in enumerate(SIDES):
            noise = shared * cue_noise[:, k, 0] + own * cue_noise[:, k, 1 + s]
            signal = cue.at_t0 + cue.per_t * tscore_bone[side]
            out[f"{cue.name}_{side}"] = signal + cue.noise_sd * noise
    return out


def sample_pelvis_density(tscore_systemic: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Relative density of pelvis, sacrum and L5 from the systemic T-score and N(0, 1) noise:
    log-normal, 1.0 at T = 0 (median), about 11% lower per T unit."""
    cue = PELVIS_DENSITY
    return np.exp(cue.at_t0 + cue.per_t * np.asarray(tscore_systemic) + cue.noise_sd * noise)


@dataclass(frozen=True)
class HipPosterior:
    """The two reported hip T-scores given what is known: jointly normal."""

    mean_right: np.ndarray
    mean_left: np.ndarray
    sd: float  # the same for both hips (their noise is symmetric)
    rho: float  # correlation of the two hips' posteriors


def _observation_model() -> tuple[np.ndarray, np.ndarray]:
    """H (observations x 3) and R (observation noise covariance) for the latent vector
    (systemic noise, right hip deviation, left hip deviation), observations in T units:
    each cue per side (right, left), then the pelvis."""
    rows, noise = [], []
    for cue in BONE_CUES:
        rows += [[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
        var = cue.noise_in_t**2
        noise.append(np.array([[1.0, CUE_SIDE_CORRELATION], [CUE_SIDE_CORRELATION, 1.0]]) * var)
    rows.append([1.0, 0.0, 0.0])
    noise.append(np.array([[PELVIS_DENSITY.noise_in_t**2]]))
    size = sum(len(block) for block in noise)
    covariance = np.zeros((size, size))
    at = 0
    for block in noise:
        covariance[at : at + len(block), at : at + len(block)] = block
        at += len(block)
    return np.array(rows), covariance


def _observations(cues: dict[str, np.ndarray], pelvis_density: np.ndarray) -> np.ndarray:
    columns = [
        BONE_CUES[k].standardised(cues[f"{cue.name}_{side}"])
        for k, cue in enumerate(BONE_CUES)
        for side in SIDES
    ]
    columns.append(PELVIS_DENSITY.standardised(np.log(pelvis_density)))
    return np.column_stack(columns)


def posterior_hips(
    prior_mean: np.ndarray,
    cues: dict[str, np.ndarray] | None,
    pelvis_density: np.ndarray | None = None,
    dxa_offset: np.ndarray | float = 0.0,
    prior_var: float | None = None,
) -> HipPosterior:
    """The two reported hip T-scores given a prior and (optionally) the exact image cues.

    Latent: the systemic T-score ~ N(prior_mean, prior_var) (default: the clinical model's
    SYSTEMIC_SD^2) and each hip's deviation ~ N(0, HIP_ASYMMETRY_SD^2). Observations: both
    hips' five cues (noise correlated between sides) and ``pelvis_density``, all linear and
    Gaussian, so the posterior is exact (a Kalman update). ``cues=None`` gives the prior alone;
    ``dxa_offset`` is added to give reported T-scores.
    """
    prior_var = SYSTEMIC_SD**2 if prior_var is None else prior_var
    prior_mean = np.asarray(prior_mean, dtype=float)
    prior_cov = np.diag([prior_var, HIP_ASYMMETRY_SD**2, HIP_ASYMMETRY_SD**2])
    to_hips = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    if cues is None:
        cov = prior_cov
        means = np.column_stack([prior_mean, prior_mean])
    else:
        if pelvis_density is None:
            raise ValueError("posterior_hips: cues given without pelvis_density")
        h, r = _observation_model()
        r_inv = np.linalg.inv(r)
        precision = np.linalg.inv(prior_cov) + h.T @ r_inv @ h
        cov = np.linalg.inv(precision)
        # Observations relative to the prior mean (which only the systemic part carries).
        residual = _observations(cues, pelvis_density) - prior_mean[:, None]
        latent = residual @ (cov @ h.T @ r_inv).T  # posterior mean of (noise, right, left)
        means = prior_mean[:, None] + latent @ to_hips.T
    hip_cov = to_hips @ cov @ to_hips.T
    sd = float(np.sqrt(hip_cov[0, 0]))
    return HipPosterior(
        mean_right=means[:, 0] + dxa_offset,
        mean_left=means[:, 1] + dxa_offset,
        sd=sd,
        rho=float(hip_cov[0, 1] / hip_cov[0, 0]),
    )


def probability_of_label(posterior: HipPosterior) -> np.ndarray:
    """P(lower reported hip T-score <= -2.45, i.e. reported as <= -2.5)."""
    return probability_lowest(
        posterior.mean_right, posterior.mean_left, posterior.sd, posterior.rho, LABEL_THRESHOLD
    )


@dataclass(frozen=True)
class TrabecularAppearance:
    """How the trabecular cues look: strengths in [0, 1], sizes in mm."""

    tensile: float
    compressive: float
    secondary: float
    ward_radius_mm: float
    spacing_mm: float  # trabecular spacing (Tb.Sp): the texture band sits at 1 / spacing
    thickness_mm: float  # trabecular thickness (Tb.Th): rolls the band off at high frequency
    contrast: float  # texture amplitude relative to the mean trabecular density
    density: float  # projected BV/TV
    hurst: float


def _sigmoid(x: float) -> float:
    return float(special.expit(x))


def trabecular_appearance(pattern: float, density: float, hurst: float) -> TrabecularAppearance:
    """Map the Singh-like pattern score (T units) to the visible state of each group.

    The midpoints order the Singh grades: Ward's triangle grows steadily, the tensile group
    fades around T -1.8 (grade 4 to 3), the secondary compressive around -2.6, the principal
    compressive only below -3.6 (grade 2 to 1).
    """
    return TrabecularAppearance(
        tensile=_sigmoid((pattern + 1.8) / 0.55),
        compressive=_sigmoid((pattern + 3.6) / 0.7),
        secondary=_sigmoid((pattern + 2.6) / 0.6),
        ward_radius_mm=float(np.clip(6.0 - 2.2 * pattern, 4.0, 17.0)),
        # Tb.Sp ~0.6-0.8 mm, Tb.Th ~0.2 mm in the femoral head and neck (micro-CT, Hildebrand
        # et al., JBMR 1999); spacing grows and trabeculae thin with bone loss.
        spacing_mm=float(np.clip(0.8 - 0.15 * pattern, 0.5, 1.5)),
        thickness_mm=float(np.clip(0.2 + 0.025 * pattern, 0.1, 0.3)),
        contrast=float(np.clip(0.40 + 0.05 * pattern, 0.15, 0.55)),
        density=float(np.clip(density, 0.08, 0.45)),
        hurst=float(np.clip(hurst, 0.05, 0.95)),
    )
