"""The end of every sequence layer in the official ConvS5 and ConvLSTM models: dropout, skip, post-LayerNorm."""

import torch
import torch.nn.functional as F
from torch import nn

NORM_EPS = 1e-6
"""Flax's ``LayerNorm``/``GroupNorm`` epsilon, used by every norm of the video models."""


def channel_layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """``norm`` over the channels of ``x [..., D, h, w]`` at every pixel (Flax's ``LayerNorm`` on NHWC maps)."""
    return norm(x.movedim(-3, -1)).movedim(-1, -3)


class PostNormResidual(nn.Module):
    """``LayerNorm_D(u + dropout(y))`` for a layer's input ``u`` and its sequence output ``y``, both
    ``[B, T, D, h, w]``; the dropout mask is shared by all ``T`` frames (Flax ``Dropout(broadcast_dims=[0])``
    on time-major sequences)."""

    def __init__(self, d_model: int, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout
        self.norm = nn.LayerNorm(d_model, eps=NORM_EPS)

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout > 0:
            y = y * F.dropout(torch.ones_like(y[:, :1]), self.dropout, training=True)
        return channel_layer_norm(u + y, self.norm)
