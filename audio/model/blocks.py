"""Lina-Speech's causal GLA block: ``x = x + GLA(LN(x)); x = x + SwiGLU(LN(x)); dropout``.

The GLA mixer is configured as Lina-Speech has it (``expand_k 1``, ``expand_v 2``, short conv, rank-16 gate / 16).
Its state is the mixer's ``GLAState``; ``initial_state`` turns a recurrent state ``[B, H, K, V]`` (a tuned voice)
into the ``GLAState`` to start from.
"""

import torch
from torch import nn

from ...core.mixers import build_mixer
from ...core.mixers.gla import GLAState
from .swiglu import SwiGLU


class GLABlock(nn.Module):
    """Causal block over ``x [B, L, d]`` with ``forward(x, state)`` and the streaming ``step(x_t [B, d], state)``."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.mixer_norm = nn.LayerNorm(d_model)
        self.mixer = build_mixer(
            "gla",
            d_model=d_model,
            num_heads=num_heads,
            expand_k=1,
            expand_v=2,
            use_short_conv=True,
            gate_low_rank_dim=16,
            gate_logit_normalizer=16.0,
        )
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = SwiGLU(d_model)
        self.dropout = nn.Dropout(dropout)

    @property
    def state_shape(self) -> tuple[int, int, int]:
        """``(H, K, V)`` of the recurrent state."""
        return self.mixer.num_heads, self.mixer.head_k_dim, self.mixer.head_v_dim

    def initial_state(self, recurrent: torch.Tensor) -> GLAState:
        """The state that starts from ``recurrent [B, H, K, V]`` with an empty short-conv history."""
        conv = recurrent.new_zeros(recurrent.shape[0], self.mixer.conv.channels, self.mixer.conv.kernel_size - 1)
        return GLAState(recurrent, conv)

    def forward(self, x: torch.Tensor, state: GLAState | None = None) -> tuple[torch.Tensor, GLAState]:
        """``x [B, L, d]`` -> ``(y [B, L, d], state after step L)``."""
        mixed, state = self.mixer(self.mixer_norm(x), state)
        x = x + mixed
        return self.dropout(x + self.mlp(self.mlp_norm(x))), state

    def step(self, x_t: torch.Tensor, state: GLAState | None = None) -> tuple[torch.Tensor, GLAState]:
        """``x_t [B, d]`` -> ``(y_t [B, d], next state)``."""
        mixed, state = self.mixer.step(self.mixer_norm(x_t), state)
        x_t = x_t + mixed
        return self.dropout(x_t + self.mlp(self.mlp_norm(x_t))), state
