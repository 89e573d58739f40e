"""The ConvLSTM baseline of the ConvS5 paper (Shi et al. 2015 as in the official ``convLSTM_noVQ``), with the same
encoder, decoder, skip and post-LayerNorm as ConvS5, so only the sequence layer differs.

One step on latent maps, ``*`` a 2-D convolution with one kernel ``K`` over the concatenation ``[u_t, h_{t-1}]``
(no bias, no peepholes)::

    i, f, o, g = split(K * [u_t, h_{t-1}])
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g),        h_t = sigmoid(o) tanh(c_t)

The hidden size equals ``d_model`` (the per-layer skip ``u + h`` needs it; both are 256 in the official config).
It has no parallel form: training runs the ``T`` steps in sequence.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .initializers import he_normal
from .predictor import VideoPredictor
from .residual import PostNormResidual

LSTMState = tuple[torch.Tensor, torch.Tensor]
"""``(c, h)``, each ``[B, d_model, h, w]``."""


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step on ``[B, D, h, w]`` maps; ``kernel [4D, 2D, k, k]`` is He-normal (fan-in ``2D k^2``)."""

    def __init__(self, d_model: int, kernel_size: int = 3) -> None:
        super().__init__()
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        fan_in = 2 * d_model * kernel_size**2
        self.d_model = d_model
        self.kernel = nn.Parameter(he_normal(4 * d_model, 2 * d_model, kernel_size, kernel_size, fan_in=fan_in))

    def forward(self, u_t: torch.Tensor, state: LSTMState | None = None) -> LSTMState:
        """``u_t [B, D, h, w]`` and ``(c, h)`` (zeros when None) -> the new ``(c, h)``."""
        if not isinstance(u_t, torch.Tensor) or u_t.dim() != 4 or u_t.shape[1] != self.d_model:
            shape = tuple(u_t.shape) if isinstance(u_t, torch.Tensor) else type(u_t).__name__
            raise ValueError(f"u_t must be [B, D, h, w] with D = d_model = {self.d_model}, got {shape}")
        if state is None:
            zeros = torch.zeros_like(u_t)
            state = (zeros, zeros)
        elif (
            not isinstance(state, (tuple, list))
            or len(state) != 2
            or any(not isinstance(s, torch.Tensor) or s.shape != u_t.shape for s in state)
        ):
            raise ValueError(f"the ConvLSTM state must be (c, h), each of shape {tuple(u_t.shape)}")
        c, h = state
        gates = F.conv2d(torch.cat([u_t, h], dim=1), self.kernel, padding=self.kernel.shape[-1] // 2)
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return c, torch.sigmoid(o) * torch.tanh(c)


class ConvLSTMLayer(nn.Module):
    """``LayerNorm(u + dropout(h))`` with ``h`` the ConvLSTM's hidden maps, on ``[B, T, d_model, h, w]``."""

    def __init__(self, d_model: int, kernel_size: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.cell = ConvLSTMCell(d_model, kernel_size)
        self.residual = PostNormResidual(d_model, dropout)

    def forward(self, u: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        hidden = []
        for u_t in u.unbind(1):  # one backward for all frames (u[:, t] would cost a full-size gradient each)
            state = self.cell(u_t, state)
            hidden.append(state[1])
        return self.residual(u, torch.stack(hidden, dim=1)), state

    def step(self, u_t: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        state = self.cell(u_t, state)
        return self.residual(u_t[:, None], state[1][:, None])[:, 0], state


class ConvLSTMVideo(VideoPredictor):
    """ConvLSTM next-frame model (the official ``convLSTM_noVQ``): ResNet encoder, ``n_layers`` ``ConvLSTMLayer``,
    mirrored decoder with ``tanh``. States are one ``(c, h)`` pair per layer.

    Args:
        image_size, channels, depths, d_model, num_groups: see ``VideoPredictor``.
        n_layers: ConvLSTM layers (8).
        kernel_size: width of the ConvLSTM kernel (3).
        dropout: dropout rate of every layer's output (0 in the official configs).
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        depths: Sequence[int] = (64, 128, 256),
        d_model: int = 256,
        n_layers: int = 8,
        kernel_size: int = 3,
        dropout: float = 0.0,
        num_groups: int = 32,
    ) -> None:
        super().__init__(
            image_size,
            channels,
            depths,
            d_model,
            num_groups,
            n_layers,
            lambda: ConvLSTMLayer(d_model, kernel_size, dropout),
        )
