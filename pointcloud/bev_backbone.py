"""A SECOND/CenterPoint-style 2D backbone on the BEV map: two convolution stages and an upsample-concat neck.

``[B, C_in, H, W]`` (the height-compressed voxel features, ``C_in = C * D``) goes through

    stage 1: 3x3 conv (stride 1) + layers[0] 3x3 convs, channels[0] wide  -> [B, c_0, H, W]
    stage 2: 3x3 conv (stride 2) + layers[1] 3x3 convs, channels[1] wide  -> [B, c_1, ceil(H / 2), ceil(W / 2)]
    neck:    stage 1 by a 1x1 conv, stage 2 by a stride-2 transposed conv, each to upsample_channels and
             cropped to H x W, concatenated                               -> [B, 2 * upsample_channels, H, W]

every convolution followed by BatchNorm and ReLU (OpenPCDet's ``BaseBEVBackbone`` with two levels and upsample
strides 1 and 2). The output keeps the input's resolution: the head's feature-map stride is 1.
"""

from collections.abc import Sequence

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.01),
        nn.ReLU(),
    ]


class BEVBackbone(nn.Module):
    """Two-stage BEV backbone with an upsample-concat neck; ``forward([B, in_channels, H, W]) -> [B, out_channels,
    H, W]`` with ``out_channels = 2 * upsample_channels``.

    Args:
        in_channels: channels of the BEV map (``C * D`` after height compression).
        channels: widths of the two stages.
        layers: extra 3x3 convolutions in each stage after its first.
        upsample_channels: width of each neck branch.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int] = (64, 128),
        layers: Sequence[int] = (3, 5),
        upsample_channels: int = 128,
    ) -> None:
        super().__init__()
        if len(channels) != 2 or len(layers) != 2:
            raise ValueError(f"channels and layers must hold two numbers each, got {list(channels)}, {list(layers)}")
        if min(in_channels, *channels, upsample_channels) < 1 or min(layers) < 0:
            raise ValueError(
                f"need positive widths and non-negative layer counts, got in_channels={in_channels}, "
                f"channels={list(channels)}, layers={list(layers)}, upsample_channels={upsample_channels}"
            )
        self.in_channels = in_channels
        self.out_channels = 2 * upsample_channels
        stage_inputs = (in_channels, channels[0])
        self.stages = nn.ModuleList(
            nn.Sequential(
                *conv_bn_relu(stage_in, width, stride=stride),
                *(module for _ in range(extra) for module in conv_bn_relu(width, width)),
            )
            for stage_in, width, extra, stride in zip(stage_inputs, channels, layers, (1, 2), strict=True)
        )
        self.upsamples = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(channels[0], upsample_channels, 1, bias=False),
                    nn.BatchNorm2d(upsample_channels, eps=1e-3, momentum=0.01),
                    nn.ReLU(),
                ),
                nn.Sequential(
                    nn.ConvTranspose2d(channels[1], upsample_channels, 2, stride=2, bias=False),
                    nn.BatchNorm2d(upsample_channels, eps=1e-3, momentum=0.01),
                    nn.ReLU(),
                ),
            ]
        )

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        if bev.ndim != 4 or bev.shape[1] != self.in_channels:
            raise ValueError(f"bev must be [B, {self.in_channels}, H, W], got {tuple(bev.shape)}")
        height, width = bev.shape[2:]
        first = self.stages[0](bev)
        second = self.stages[1](first)
        branches = [
            upsample(x)[:, :, :height, :width] for upsample, x in zip(self.upsamples, (first, second), strict=True)
        ]
        return torch.cat(branches, dim=1)
