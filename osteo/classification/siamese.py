"""Bilateral (Siamese) encoder: one backbone, shared weights, both hips -> deep features.

Both hip crops go through the same backbone in ONE forward pass (stacked on the batch axis):
half the kernel launches of two passes, and BatchNorm sees both sides' statistics together.
Each side's pooled features are projected to ``embed_dim`` (128 in the reference), then the two
embeddings are combined:

============  =======================================  ===============  ====================
combine       deep features                            out_features     why
============  =======================================  ===============  ====================
concat        ``[right, left]``                        2 * embed_dim    the reference (256);
                                                                        keeps which side is
                                                                        which
difference    ``[(right + left) / 2, |right - left|]`` 2 * embed_dim    symmetric in the
                                                                        sides: shared bone
                                                                        quality + asymmetry
max           ``max(right, left)``                     embed_dim        the worse hip drives
                                                                        the label (lowest
                                                                        T-score)
============  =======================================  ===============  ====================

The fusion head sizes itself from ``out_features``, so ``max`` reports its true width rather
than padding to 256.

The left hip is expected already mirrored (by the data transforms), so both sides present the
femur the same way round.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from osteo.classification.backbones import create_backbone

__all__ = ["COMBINE_MODES", "BilateralEncoder"]

COMBINE_MODES = ("concat", "difference", "max")


class BilateralEncoder(nn.Module):
    """``forward(right, left) -> [B, out_features]`` with one shared-weight backbone."""

    def __init__(
        self,
        backbone_name: str = "small_cnn",
        embed_dim: int = 128,
        combine: str = "concat",
        in_channels: int = 1,
        pretrained: bool = False,
        weights_path: str | Path | None = None,
        **backbone_kwargs,
    ) -> None:
        super().__init__()
        if combine not in COMBINE_MODES:
            raise ValueError(f"unknown combine {combine!r}; choose one of {COMBINE_MODES}")
        self.combine = combine
        self.embed_dim = int(embed_dim)
        self.backbone = create_backbone(
            backbone_name,
            in_channels=in_channels,
            pretrained=pretrained,
            weights_path=weights_path,
            **backbone_kwargs,
        )
        # The reference's per-side dense layer of 128 units.
        self.project = nn.Sequential(
            nn.Linear(self.backbone.out_features, self.embed_dim), nn.ReLU(inplace=True)
        )
        self.out_features = self.embed_dim * (1 if combine == "max" else 2)

    @property
    def feature_layer(self) -> str:
        """Dotted name of the submodule whose output is the last feature map (for hooks).

        Its output holds both sides stacked: rows ``[:B]`` are the right hips, ``[B:]`` left.
        """
        return f"backbone.{self.backbone.feature_layer}"

    def forward(self, right: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
        deep, _, _ = self.forward_with_feature_maps(right, left)
        return deep

    def forward_with_feature_maps(
        self, right: torch.Tensor, left: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Deep features and each side's last feature map ``[B, C, h, w]``, in the graph.

        Grad-CAM without hooks: ``torch.autograd.grad(score, (right_map, left_map))``.
        """
        if right.shape != left.shape:
            raise ValueError(f"right {tuple(right.shape)} and left {tuple(left.shape)} differ")
        maps = self.backbone.forward_features(torch.cat([right, left], dim=0))
        # Pool each side's chunk (not `maps`) so the chunks themselves are in the graph and
        # gradients can be taken with respect to them.
        right_map, left_map = maps.chunk(2, dim=0)
        pooled = torch.cat([self.backbone.pool(right_map), self.backbone.pool(left_map)], dim=0)
        right_emb, left_emb = self.project(pooled).chunk(2, dim=0)
        return self._combine(right_emb, left_emb), right_map, left_map

    def _combine(self, right: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
        if self.combine == "concat":
            return torch.cat([right, left], dim=1)
        if self.combine == "difference":
            return torch.cat([(right + left) / 2, (right - left).abs()], dim=1)
        return torch.maximum(right, left)
