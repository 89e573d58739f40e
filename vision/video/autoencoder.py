"""The per-frame ResNet encoder and decoder of the official no-VQ video models (TECO's ``ResNetEncoder`` and
``ResNetDecoder``), shared by ConvS5 and ConvLSTM: 64x64 frames <-> 16x16 latent maps for depths (64, 128, 256).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .residual import NORM_EPS, channel_layer_norm


class ResNetBlock(nn.Module):
    """``skip(x) + 0.1 * conv3(ELU(GN(conv3(ELU(GN(x))))))``; ``skip`` is a bias-free 1x1 conv when the channel
    count changes, else the identity. ``[N, in_channels, H, W] -> [N, out_channels, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int, num_groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups, in_channels, eps=NORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(num_groups, out_channels, eps=NORM_EPS)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        same = in_channels == out_channels
        self.skip = nn.Identity() if same else nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.elu(self.norm1(x)))
        h = self.conv2(F.elu(self.norm2(h)))
        return self.skip(x) + 0.1 * h


class FrameEncoder(nn.Module):
    """``conv3x3 -> block(depths[0])``, then for each further depth ``2x2 average pool -> block(depth)``:
    ``[N, channels, S, S] -> [N, depths[-1], S / 2^(len(depths) - 1), ...]``."""

    def __init__(self, channels: int, depths: Sequence[int], num_groups: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(channels, depths[0], 3, padding=1)
        self.blocks = nn.ModuleList(
            ResNetBlock(depths[max(i - 1, 0)], depth, num_groups) for i, depth in enumerate(depths)
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.stem(frames)
        for i, block in enumerate(self.blocks):
            x = block(F.avg_pool2d(x, 2) if i else x)
        return x


class FrameDecoder(nn.Module):
    """The mirror of ``FrameEncoder``: ``conv3x3`` to ``depths[0]``, then for each depth from the deepest a block
    followed by a nearest 2x upsampling (none after the last), a channel LayerNorm and a 1x1 projection:
    ``[N, d_model, s, s] -> [N, channels, s * 2^(len(depths) - 1), ...]`` (pre-tanh)."""

    def __init__(self, d_model: int, depths: Sequence[int], channels: int, num_groups: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(d_model, depths[0], 3, padding=1)
        widths = [depths[0], *reversed(depths)]
        self.blocks = nn.ModuleList(ResNetBlock(widths[i], widths[i + 1], num_groups) for i in range(len(depths)))
        self.norm = nn.LayerNorm(depths[0], eps=NORM_EPS)
        self.head = nn.Conv2d(depths[0], channels, 1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.stem(latents)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.blocks) - 1:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.head(channel_layer_norm(x, self.norm))
