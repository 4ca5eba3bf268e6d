"""Bilateral Siamese CNN, fusion heads and the Lightning module that trains them.

``osteo.classification.classical.StackingEnsemble`` (the authors' scikit-learn second stage)
is not imported here, to keep scikit-learn out of the import of this package.
"""

from osteo.classification.backbones import (
    FeatureBackbone,
    create_backbone,
    list_backbones,
    load_backbone_weights,
    register_backbone,
)
from osteo.classification.heads import (
    FusionHead,
    canonical_head_name,
    create_head,
    head_inputs,
    list_heads,
    register_head,
)
from osteo.classification.hparams import ClassifierConfig, classifier_config
from osteo.classification.module import OsteoporosisModule
from osteo.classification.siamese import COMBINE_MODES, BilateralEncoder

__all__ = [
    "COMBINE_MODES",
    "BilateralEncoder",
    "ClassifierConfig",
    "FeatureBackbone",
    "FusionHead",
    "OsteoporosisModule",
    "canonical_head_name",
    "classifier_config",
    "create_backbone",
    "create_head",
    "head_inputs",
    "list_backbones",
    "list_heads",
    "load_backbone_weights",
    "register_backbone",
    "register_head",
]
