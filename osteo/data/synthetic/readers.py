"""Two simulated radiologists scoring each external-test radiograph from 1 to 5.

A radiologist judges the classic plain-film signs, cortical thickness and the trabecular
pattern (Singh index), and a general impression of density, never the DXA. Each reader sees
these through perceptual noise (a reader-specific sd) and maps the impression to a 5-point
confidence scale with personal thresholds. A radiograph shows both hips and the reader
reports the worse one (the lower of the two hips' impressions). The noise levels give AUCs near
the reference readers' 0.749 and 0.700 (Kim et al. 2022) on the external cohort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bone import BONE_CUES
from .nuisance import SIDES

__all__ = ["READERS", "Reader", "reader_impression", "score_studies"]

_READ_CUES = ("cti", "trabecular_pattern", "trabecular_density")


@dataclass(frozen=True)
class Reader:
    name: str
    noise_sd: float  # perceptual noise, in T units
    # Impression (T units) below which the reader gives at least score 2, 3, 4, 5.
    thresholds: tuple[float, float, float, float]


READERS: tuple[Reader, ...] = (
    Reader("reader1", 1.4, (0.0, -1.3, -2.2, -3.1)),
    Reader("reader2", 2.1, (0.4, -1.1, -2.4, -3.6)),
)


def reader_impression(cues: dict[str, np.ndarray]) -> np.ndarray:
    """The noise-free impression of the worse hip: per hip, the mean of the visible cues read
    as T-scores; the lower of the two hips."""
    by_name = {cue.name: cue for cue in BONE_CUES}
    per_hip = [
        np.mean([by_name[n].standardised(cues[f"{n}_{side}"]) for n in _READ_CUES], axis=0)
        for side in SIDES
    ]
    return np.minimum(*per_hip)


def score_studies(rng: np.random.Generator, cues: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scores 1 (surely normal) to 5 (surely osteoporosis) per reader."""
    impression = reader_impression(cues)
    scores = {}
    for reader in READERS:
        seen = impression + reader.noise_sd * rng.standard_normal(impression.shape)
        scores[reader.name] = 1 + sum((seen < t).astype(int) for t in reader.thresholds)
    return scores
