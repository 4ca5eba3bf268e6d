"""Backbone registry: single-channel 2D CNNs that map one hip crop to a feature vector.

timm-style: each backbone is a factory registered by name with :func:`register_backbone`,
built with :func:`create_backbone`, and listed with :func:`list_backbones`. Every backbone is a
:class:`FeatureBackbone`:

- ``forward_features(x)``: ``[B, in_channels, H, W] -> [B, C, h, w]``, the last spatial
  feature map, after its activation (what Grad-CAM weights);
- ``forward(x)``: ``[B, in_channels, H, W] -> [B, out_features]`` (global average pooling);
- ``out_features``: ``C``;
- ``feature_layer``: ``"features"``, the submodule whose output is that map, for hook-based
  explanation tools.

Nothing is ever downloaded: ``pretrained=True`` needs a local ``weights_path``. The MONAI
networks are built with ``pretrained=False`` and their classifier layers dropped, so no
parameter is left unused (DDP without ``find_unused_parameters`` requires that).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from osteo.registry import Registry

__all__ = [
    "BACKBONES",
    "FeatureBackbone",
    "WeightsReport",
    "create_backbone",
    "list_backbones",
    "load_backbone_weights",
    "register_backbone",
]

log = logging.getLogger(__name__)

BackboneFactory = Callable[..., "FeatureBackbone"]
BACKBONES: Registry[BackboneFactory] = Registry("backbone")


class FeatureBackbone(nn.Module):
    """A feature extractor (``features``) followed by global average pooling."""

    feature_layer = "features"

    def __init__(self, features: nn.Module, out_features: int) -> None:
        super().__init__()
        self.features = features
        self.out_features = int(out_features)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Register ``factory(in_channels: int, **kwargs) -> FeatureBackbone`` under ``name``."""

    return BACKBONES.register(name)


def list_backbones() -> list[str]:
    """Names accepted by :func:`create_backbone`, sorted."""
    return BACKBONES.names()


def create_backbone(
    name: str,
    in_channels: int = 1,
    pretrained: bool = False,
    weights_path: str | Path | None = None,
    **kwargs,
) -> FeatureBackbone:
    """Build the backbone ``name``; load ``weights_path`` (a local state dict) when given.

    ``pretrained=True`` only states that weights are expected: this project never downloads,
    so it fails unless ``weights_path`` names a local file.
    """
    factory = BACKBONES.get(name)  # raises, naming the registered backbones
    if pretrained and weights_path is None:
        raise ValueError(
            f"backbone {name!r}: pretrained=True needs a local weights_path; osteo never "
            "downloads weights. Save a state dict (torch.save(model.state_dict(), path)) and "
            "pass weights_path=path, or use pretrained=False."
        )
    backbone = factory(in_channels=in_channels, **kwargs)
    if weights_path is not None:
        load_backbone_weights(backbone, weights_path)
    return backbone


# --------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class WeightsReport:
    """What :func:`load_backbone_weights` did: keys loaded, missing, unexpected, adapted."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    adapted: list[str]  # first-conv weights summed from 3 input channels to the model's


def load_backbone_weights(backbone: nn.Module, weights_path: str | Path) -> WeightsReport:
    """Load a local state dict into ``backbone`` (``torch.load(..., weights_only=True)``).

    Accepted files: the backbone's own ``state_dict()``, the wrapped MONAI network's state dict
    (keys without the ``features.`` prefix), or a whole checkpoint (``{"state_dict": ...}``,
    e.g. a Lightning checkpoint of an earlier osteo run: everything up to ``backbone.`` is
    stripped). An RGB first convolution is summed over its input channels, as timm does, so
    ImageNet-style weights fit a single-channel radiograph. Missing and unexpected keys are
    logged; a file that matches no key at all, or a shape that does not fit, is an error.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    state = _normalise_keys(state, backbone.state_dict())

    target = backbone.state_dict()
    adapted, mismatched = [], []
    for key, value in list(state.items()):
        if key not in target or target[key].shape == value.shape:
            continue
        want = target[key].shape
        if value.ndim == 4 and len(want) == 4 and value.shape[1] == 3 and want[1] == 1:
            if value.shape[0] == want[0] and value.shape[2:] == want[2:]:
                state[key] = value.sum(dim=1, keepdim=True)
                adapted.append(key)
                continue
        mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(want)}")
    if mismatched:
        raise ValueError(f"{path}: weights do not fit the backbone: " + "; ".join(mismatched))

    result = backbone.load_state_dict(state, strict=False)
    loaded = [k for k in state if k in target]
    if not loaded:
        raise ValueError(
            f"{path}: none of its {len(state)} keys match the backbone "
            f"(e.g. file {next(iter(state), None)!r} vs model {next(iter(target), None)!r})"
        )
    report = WeightsReport(loaded, list(result.missing_keys), list(result.unexpected_keys), adapted)
    log.info("loaded %d tensors from %s", len(loaded), path)
    if report.missing:
        log.warning(
            "%s: %d backbone keys missing, e.g. %s", path, len(report.missing), report.missing[:5]
        )
    if report.unexpected:
        log.warning(
            "%s: %d unexpected keys ignored, e.g. %s",
            path,
            len(report.unexpected),
            report.unexpected[:5],
        )
    return report


def _normalise_keys(
    state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map the keys of a saved state dict onto the backbone's, whichever way it was saved."""
    whole_model = any("backbone." in key for key in state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")  # DataParallel / DDP wrappers
        if whole_model:  # a whole-model checkpoint: keep only the backbone's part
            if "backbone." not in key:
                continue
            key = key.split("backbone.", 1)[1]
        out[key] = value
    # A bare MONAI network's keys lack our "features." prefix.
    prefixed = {f"features.{k}": v for k, v in out.items()}
    if sum(k in target for k in prefixed) > sum(k in target for k in out):
        return prefixed
    return out


# --------------------------------------------------------------------------- backbones


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


@register_backbone("small_cnn")
def small_cnn(in_channels: int = 1, channels: tuple[int, ...] = (32, 64, 128)) -> FeatureBackbone:
    """The reference network: three conv-BN-ReLU-maxpool blocks (32, 64, 128 channels)."""
    blocks, previous = OrderedDict(), in_channels
    for i, width in enumerate(channels, start=1):
        blocks[f"block{i}"] = _conv_block(previous, width)
        previous = width
    return FeatureBackbone(nn.Sequential(blocks), out_features=previous)


def _monai_resnet(depth: int, in_channels: int, **kwargs) -> FeatureBackbone:
    from monai.networks.nets import resnet

    # conv1 stride 2 as in the usual 2D ResNet (MONAI's default of 1 suits small 3D volumes
    # and would quadruple the cost on a radiograph crop).
    options = {"conv1_t_stride": 2, **kwargs}
    net = getattr(resnet, f"resnet{depth}")(
        pretrained=False,
        spatial_dims=2,
        n_input_channels=in_channels,
        feed_forward=False,
        **options,
    )
    names = ["conv1", "bn1", "act", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    if net.no_max_pool:
        names.remove("maxpool")
    features = nn.Sequential(OrderedDict((n, getattr(net, n)) for n in names))
    return FeatureBackbone(features, out_features=net.in_planes)


@register_backbone("resnet10")
def resnet10(in_channels: int = 1, **kwargs) -> FeatureBackbone:
    """MONAI ResNet-10 (basic blocks 1-1-1-1), 512 features."""
    return _monai_resnet(10, in_channels, **kwargs)


@register_backbone("resnet18")
def resnet18(in_channels: int = 1, **kwargs) -> FeatureBackbone:
    """MONAI ResNet-18 (basic blocks 2-2-2-2), 512 features."""
    return _monai_resnet(18, in_channels, **kwargs)


@register_backbone("densenet121")
def densenet121(in_channels: int = 1, **kwargs) -> FeatureBackbone:
    """MONAI DenseNet-121, 1024 features."""
    from monai.networks.nets import DenseNet121

    net = DenseNet121(
        spatial_dims=2, in_channels=in_channels, out_channels=1, pretrained=False, **kwargs
    )
    # DenseNet's features end with a BatchNorm; the ReLU lives in its classifier, which we drop.
    features = net.features
    features.add_module("relu5", nn.ReLU(inplace=True))
    return FeatureBackbone(features, out_features=net.class_layers.out.in_features)


@register_backbone("efficientnet-b0")
def efficientnet_b0(in_channels: int = 1, **kwargs) -> FeatureBackbone:
    """MONAI EfficientNet-B0, 1280 features."""
    from monai.networks.nets import EfficientNetBN

    net = EfficientNetBN(
        "efficientnet-b0",
        pretrained=False,
        spatial_dims=2,
        in_channels=in_channels,
        num_classes=1,
        **kwargs,
    )
    # The same steps as EfficientNet.forward up to pooling, as named children so the keys of a
    # MONAI state dict still match (after the "features." prefix). SiLU == MONAI's swish.
    features = nn.Sequential(
        OrderedDict(
            [
                ("_conv_stem_padding", net._conv_stem_padding),
                ("_conv_stem", net._conv_stem),
                ("_bn0", net._bn0),
                ("_swish0", nn.SiLU()),
                ("_blocks", net._blocks),
                ("_conv_head_padding", net._conv_head_padding),
                ("_conv_head", net._conv_head),
                ("_bn1", net._bn1),
                ("_swish1", nn.SiLU()),
            ]
        )
    )
    return FeatureBackbone(features, out_features=net._fc.in_features)
