"""A sequence classifier from registry mixers: encoder, pre-norm residual mixer blocks, pooling, linear head."""

from typing import Any

import torch
import torch.nn.functional as F
from lrnn.core.mixers import build_mixer
from torch import nn

POOLINGS = ("mean", "last")


class MixerBlock(nn.Module):
    """``x + Dropout(GLU(Linear(GELU(mixer(LayerNorm(x))))))`` on ``[B, L, C]``."""

    def __init__(self, d_model: int, mixer: str, mixer_cfg: dict[str, Any], dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mixer = build_mixer(mixer, d_model=d_model, **mixer_cfg)
        self.gate = nn.Linear(d_model, 2 * d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.mixer(self.norm(x))
        return x + self.dropout(F.glu(self.gate(F.gelu(y)), dim=-1))


class MixerClassifier(nn.Module):
    """``x [B, L, in_channels]`` -> logits ``[B, num_classes]``.

    Args:
        in_channels: features per time step.
        num_classes: output classes.
        d_model: width of the blocks.
        n_layers: number of ``MixerBlock``s.
        mixer: registry name of the sequence mixer (``lrnn.core.mixers.available_mixers()``).
        mixer_cfg: keyword arguments of that mixer besides ``d_model``.
        dropout: dropout after each block's gate.
        pooling: ``"mean"`` over time or the ``"last"`` step.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        d_model: int,
        n_layers: int,
        mixer: str,
        mixer_cfg: dict[str, Any],
        dropout: float,
        pooling: str,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if n_layers < 1 or num_classes < 2 or in_channels < 1:
            raise ValueError(
                f"need n_layers >= 1, num_classes >= 2, in_channels >= 1; got {n_layers}, {num_classes}, {in_channels}"
            )
        self.in_channels = in_channels
        self.pooling = pooling
        self.encoder = nn.Linear(in_channels, d_model)
        self.blocks = nn.ModuleList(MixerBlock(d_model, mixer, mixer_cfg, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(f"x must be [B, L, {self.in_channels}], got shape {tuple(x.shape)}")
        h = self.encoder(x)
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        pooled = h.mean(dim=1) if self.pooling == "mean" else h[:, -1]
        return self.head(pooled)
