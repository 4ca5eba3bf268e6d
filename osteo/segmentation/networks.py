"""A registry of MONAI 2D segmentation networks, chosen by name from the config."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monai.networks.nets import AttentionUnet, BasicUNet, SegResNet, UNet
from torch import nn

from osteo.registry import Registry

__all__ = ["NETWORKS", "create_segmentation_network", "list_segmentation_networks", "NUM_CLASSES"]

NUM_CLASSES = 3  # background, the patient's right femur, the patient's left femur

# What every network here maps: a 2D radiograph with one grey channel to NUM_CLASSES logits.
_IO = {"spatial_dims": 2, "in_channels": 1, "out_channels": NUM_CLASSES}

NETWORKS: Registry[Callable[..., nn.Module]] = Registry("segmentation network")


def _strides(channels: Sequence[int]) -> tuple[int, ...]:
    return tuple([2] * (len(channels) - 1))


@NETWORKS.register("unet")
def _unet(channels: Sequence[int], num_res_units: int, dropout: float) -> nn.Module:
    return UNet(
        **_IO,
        channels=tuple(channels),
        strides=_strides(channels),
        num_res_units=num_res_units,
        norm="batch",
        dropout=dropout,
    )


@NETWORKS.register("basic_unet")
def _basic_unet(channels: Sequence[int], num_res_units: int, dropout: float) -> nn.Module:
    # BasicUNet has a fixed depth: five encoder widths plus the last decoder width.
    widths = list(channels)[:5]
    widths += [widths[-1]] * (5 - len(widths))
    return BasicUNet(
        **_IO,
        features=(*widths, widths[0]),
        dropout=dropout,
    )


@NETWORKS.register("attention_unet")
def _attention_unet(channels: Sequence[int], num_res_units: int, dropout: float) -> nn.Module:
    return AttentionUnet(
        **_IO,
        channels=tuple(channels),
        strides=_strides(channels),
        dropout=dropout,
    )


@NETWORKS.register("segresnet")
def _segresnet(channels: Sequence[int], num_res_units: int, dropout: float) -> nn.Module:
    return SegResNet(
        **_IO,
        init_filters=int(channels[0]),
        dropout_prob=dropout or None,
    )


def list_segmentation_networks() -> list[str]:
    return NETWORKS.names()


def create_segmentation_network(
    name: str,
    channels: Sequence[int] = (16, 32, 64, 128),
    num_res_units: int = 1,
    dropout: float = 0.0,
) -> nn.Module:
    factory = NETWORKS.get(name)  # raises, naming the registered networks
    return factory(channels=channels, num_res_units=num_res_units, dropout=dropout)
