"""Why the model decided: Grad-CAM on each hip, input x gradient for texture and clinical values.

One forward and one backward pass of the logit give both:

- **Grad-CAM** (Selvaraju et al. 2017) on the last feature map of the shared backbone, for each
  hip separately (``BilateralEncoder.forward_with_feature_maps`` keeps both sides' maps in the
  graph). Both hips are scaled by the same maximum, so a hip that matters less also looks
  weaker; ``share`` is each hip's part of the total.
- **input x gradient** for texture and clinical values: the inputs are standardised, so an
  average training study is all zeros and ``x * dlogit/dx`` is, to first order, how much each
  feature moved the logit away from that average study. Positive = towards osteoporosis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Explanation", "FeatureContribution", "explain_prediction", "grad_cam"]


@dataclass
class FeatureContribution:
    name: str
    group: str  # "clinical" or "texture"
    value: float | None  # the raw value (None when missing and imputed)
    standardised: float
    contribution: float  # logit units
    imputed: bool = False

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "group": self.group,
            "value": None if self.value is None else round(float(self.value), 6),
            "standardised": round(float(self.standardised), 4),
            "contribution": round(float(self.contribution), 5),
            **({"imputed": True} if self.imputed else {}),
        }


@dataclass
class Explanation:
    logit: float
    probability: float
    tscore: float | None = None
    cams: dict[str, np.ndarray] = field(default_factory=dict)  # side -> (size, size) in [0, 1]
    cam_share: dict[str, float] = field(default_factory=dict)  # side -> fraction of the total
    contributions: list[FeatureContribution] = field(default_factory=list)  # by |contribution|
    group_totals: dict[str, float] = field(default_factory=dict)  # sum per group, logit units

    def summary(self, top_k: int) -> dict:
        out: dict = {}
        if self.cam_share:
            out["gradcam_share"] = {k: round(v, 4) for k, v in self.cam_share.items()}
        if self.contributions:
            out["top_features"] = [c.as_dict() for c in self.contributions[:top_k]]
            out["contribution_totals"] = {k: round(v, 5) for k, v in self.group_totals.items()}
        return out


def grad_cam(feature_map: torch.Tensor, gradient: torch.Tensor, size: int) -> np.ndarray:
    """Grad-CAM of one image ``[C, h, w]`` upsampled to ``size`` x ``size`` (not normalised)."""
    weights = gradient.mean(dim=(1, 2), keepdim=True)  # one weight per channel
    cam = F.relu((weights * feature_map).sum(dim=0))
    cam = F.interpolate(cam[None, None], size=(size, size), mode="bilinear", align_corners=False)
    return cam[0, 0].detach().cpu().numpy()


def explain_prediction(
    module,
    batch: Mapping[str, torch.Tensor],
    names: Mapping[str, Sequence[str]],
    raw_values: Mapping[str, np.ndarray],
    imputed: Mapping[str, Sequence[str]] | None = None,
    with_gradcam: bool = True,
) -> Explanation:
    """Predict one study (batch of 1) and explain it; ``module`` is an OsteoporosisModule."""
    imputed = imputed or {}
    module.eval()
    with torch.enable_grad():
        leaves = {
            key: batch[key].detach().clone().float().requires_grad_(True)
            for key in ("texture", "clinical")
            if key in module.inputs
        }
        features = dict(leaves)
        maps: dict[str, torch.Tensor] = {}
        if "deep" in module.inputs:
            deep, maps["right"], maps["left"] = module.encoder.forward_with_feature_maps(
                batch["right"], batch["left"]
            )
            features["deep"] = deep
        out = module.head(features)
        logit = out["logit"].float().sum()
        targets = list(leaves.values()) + (list(maps.values()) if with_gradcam else [])
        grads = torch.autograd.grad(logit, targets) if targets else []

    explanation = Explanation(
        logit=float(logit.detach()),
        # The same prior-shift correction as predict_step (the run's threshold is on it).
        probability=float(torch.sigmoid(logit.detach() - module.logit_shift)),
        tscore=float(out["tscore"].detach().float().sum()) if "tscore" in out else None,
    )
    grads_by_key = dict(
        zip(list(leaves) + (list(maps) if with_gradcam else []), grads, strict=True)
    )
    for key, leaf in leaves.items():
        x = leaf.detach()[0].cpu().numpy()
        g = grads_by_key[key][0].detach().cpu().numpy()
        contribution = x * g
        explanation.group_totals[key] = float(contribution.sum())
        missing = set(imputed.get(key, ()))
        for i, name in enumerate(names[key]):
            explanation.contributions.append(
                FeatureContribution(
                    name=name,
                    group=key,
                    value=None if name in missing else float(raw_values[key][i]),
                    standardised=float(x[i]),
                    contribution=float(contribution[i]),
                    imputed=name in missing,
                )
            )
    explanation.contributions.sort(key=lambda c: -abs(c.contribution))
    if with_gradcam and maps:
        size = batch["right"].shape[-1]
        cams = {side: grad_cam(maps[side][0], grads_by_key[side][0], size) for side in maps}
        peak = max(float(c.max()) for c in cams.values())
        total = sum(float(c.sum()) for c in cams.values())
        explanation.cams = {s: c / peak if peak > 0 else c for s, c in cams.items()}
        explanation.cam_share = {
            s: float(c.sum()) / total if total > 0 else 0.5 for s, c in cams.items()
        }
    return explanation
