"""What the radiograph shows of the bone: five latent cues, each tied to the T-score with noise.

Each cue is linear in the bone's T-score plus its own Gaussian noise (fixed per patient: the
same person's anatomy at every visit), so no single cue gives the answer and the best possible
use of all of them has a closed form (``posterior_tscore``). Strengths follow the literature:

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from .population import LABEL_THRESHOLD, TSCORE_NOISE_SD

__all__ = [
    "BONE_CUES",
    "BoneCue",
    "TrabecularAppearance",
    "posterior_tscore",
    "sample_bone_cues",
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


# Noise levels are set for the correlation with T over the population (T sd ~1.15):
# cti 0.62, density 0.70, pattern 0.70, hurst 0.34, calcar 0.45.
BONE_CUES: tuple[BoneCue, ...] = (
    BoneCue("cti", 0.52, 0.045, 0.065),
    BoneCue("trabecular_density", 0.30, 0.035, 0.041),
    BoneCue("trabecular_pattern", 0.0, 1.0, 1.17),
    BoneCue("hurst", 0.35, 0.025, 0.08),
    BoneCue("calcar_mm", 4.5, 0.35, 0.8),
)


def sample_bone_cues(tscore_bone: np.ndarray, cue_noise: np.ndarray) -> dict[str, np.ndarray]:
    """Cue values from the bone T-score and standard-normal noise of shape (n, n_cues)."""
    return {
        cue.name: cue.at_t0 + cue.per_t * tscore_bone + cue.noise_sd * cue_noise[:, k]
        for k, cue in enumerate(BONE_CUES)
    }


def posterior_tscore(
    prior_mean: np.ndarray,
    cues: dict[str, np.ndarray] | None,
    dxa_offset: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, float | np.ndarray]:
    """Mean and sd of the reported T-score given the clinical prediction and the exact cues.

    The prior is the clinical model, T ~ N(prior_mean, 1); each cue is a Gaussian likelihood.
    With ``cues=None`` this is the clinical-only posterior. ``prior_mean`` is the bone
    T-score's clinical prediction; ``dxa_offset`` is added to give the reported T-score.
    """
    precision = 1.0 / TSCORE_NOISE_SD**2
    weighted = np.asarray(prior_mean, dtype=float) * precision
    for cue in BONE_CUES if cues is not None else ():
        cue_precision = (cue.per_t / cue.noise_sd) ** 2
        weighted = weighted + cue_precision * cue.standardised(cues[cue.name])
        precision += cue_precision
    return weighted / precision + dxa_offset, precision**-0.5


def probability_of_label(mean: np.ndarray, sd: float | np.ndarray) -> np.ndarray:
    """P(reported T-score <= -2.5) under a normal posterior."""
    return special.ndtr((LABEL_THRESHOLD - np.asarray(mean)) / sd)


def image_only_score(cues: dict[str, np.ndarray]) -> np.ndarray:
    """The likelihood-weighted T estimate from the cues alone (higher = healthier bone)."""
    total = 0.0
    weight = 0.0
    for cue in BONE_CUES:
        precision = (cue.per_t / cue.noise_sd) ** 2
        total = total + precision * cue.standardised(cues[cue.name])
        weight += precision
    return total / weight


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
