"""Losses of the classifier: imbalance-aware BCE, focal loss, masked T-score regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["binary_focal_loss_with_logits", "masked_tscore_loss"]


def binary_focal_loss_with_logits(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0
) -> torch.Tensor:
    """Mean focal loss (Lin et al.): BCE scaled by ``(1 - p_t) ** gamma``.

    Easy, confidently right examples (most of the many negatives) contribute little, so the
    rare positives are not swamped without needing a class weight.
    """
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    return ((1 - p_t) ** gamma * bce).mean()


def masked_tscore_loss(prediction: torch.Tensor, tscore: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the studies whose T-score is known (not NaN).

    Written without boolean indexing: no host-device sync, and a batch without any known
    T-score gives a zero that still depends on ``prediction``, so the regression output takes
    part in every backward pass (DDP requires every parameter to receive a gradient unless
    ``find_unused_parameters`` is on).
    """
    known = torch.isfinite(tscore)
    target = torch.nan_to_num(tscore.to(prediction.dtype), nan=0.0, posinf=0.0, neginf=0.0)
    squared = torch.where(known, (prediction - target) ** 2, prediction * 0.0)
    return squared.sum() / known.sum().clamp(min=1)
