"""Names every stage shares: femur labels of the mask contract and the split names."""

from __future__ import annotations

__all__ = [
    "FEMUR_LABELS",
    "RIGHT_FEMUR",
    "LEFT_FEMUR",
    "SPLITS",
    "TRAINING_SPLITS",
    "MODEL_SPLITS",
    "EVALUATED_SPLITS",
    "TEST_SPLITS",
]

# The femur mask contract (docs/architecture.md): 0 background, 1 the patient's right femur
# (image left), 2 the patient's left femur (image right).
RIGHT_FEMUR = 1
LEFT_FEMUR = 2
FEMUR_LABELS: tuple[tuple[str, int], ...] = (("right", RIGHT_FEMUR), ("left", LEFT_FEMUR))

# Split names in pipeline order. `train`/`val` come from the development studies, the two test
# splits from the date range and the external sites.
SPLITS: tuple[str, ...] = ("train", "val", "internal_test", "external_test")
MODEL_SPLITS = SPLITS
TRAINING_SPLITS: tuple[str, ...] = SPLITS[:2]  # a model is fitted on train, selected on val
EVALUATED_SPLITS: tuple[str, ...] = ("val", "internal_test", "external_test")
TEST_SPLITS: tuple[str, ...] = ("internal_test", "external_test")
