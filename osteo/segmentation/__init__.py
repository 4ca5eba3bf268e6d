"""Femur segmentation: MONAI 2D networks trained in Lightning, batched mask prediction."""

from osteo.segmentation.module import FemurSegmentationModule
from osteo.segmentation.networks import create_segmentation_network, list_segmentation_networks

__all__ = ["FemurSegmentationModule", "create_segmentation_network", "list_segmentation_networks"]
