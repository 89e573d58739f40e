"""GLA: gated linear attention (Yang, Wang, Shen, Panda, Kim, ICML 2024), the layer Lina-Speech uses.

Per head ``h`` (``H`` heads, ``K = key_dim / H``, ``V = value_dim / H``), for the input ``x_t [C]``::

    q_t, k_t, v_t = W_q x_t, W_k x_t, W_v x_t                     (each optionally through a short conv + SiLU)
    alpha_t       = logsigmoid(W_2 W_1 x_t + b) / gate_logit_normalizer        log forget gate per key, [K]
    S_t           = diag(exp alpha_t) S_{t-1} + k_t^T v_t                      [K, V]
    o_t           = K^-1/2 q_t S_t                                             [V]
    y_t           = W_o concat_h( RMSNorm(o_t) * swish(W_g x_t) )

``W_1 [r, C]`` and ``W_2 [key_dim, r]`` form the low-rank gate (rank ``r = 16``); dividing the log gate by the
normaliser (16) keeps the decays ``exp alpha`` near 1. The RMSNorm is per head with one weight ``[V]`` shared by the
heads (fla's ``FusedRMSNormGated``). The recurrence runs through ``chunk_gla``; ``step`` through ``chunk_gla_step``.

Initialisation as in fla's models and Lina-Speech: every linear weight ``xavier_uniform(gain=2^-2.5)``, the gate bias
zero, the norm weight one; the short convs as ``torch.nn.Conv1d``.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..scan import chunk_gla, chunk_gla_step
from .base import Mixer
from .checks import check_mixer_state, check_positive_int, expanded_dim
from .registry import register_mixer
from .short_conv import ShortConv


class GLAState(NamedTuple):
    """``recurrent [B, H, K, V]`` float32, and the short conv's last inputs ``conv [B, 2 key_dim + value_dim, W-1]``
    (None without ``use_short_conv``)."""

    recurrent: torch.Tensor
    conv: torch.Tensor | None


@register_mixer("gla")
class GLA(Mixer):
    """Gated linear attention with a low-rank per-key forget gate and an RMSNorm-swish output gate.

    Args:
        d_model: channels ``C``.
        num_heads: heads ``H``.
        expand_k, expand_v: ``key_dim = C * expand_k``, ``value_dim = C * expand_v`` (fla: 0.5 and 1; Lina-Speech:
            1 and 2).
        gate_low_rank_dim: rank ``r`` of the forget-gate projection.
        gate_logit_normalizer: divides the log forget gate.
        use_short_conv, conv_size, conv_bias: causal depthwise conv (kernel ``W``) with SiLU on q, k and v.
        norm_eps: epsilon of the per-head RMSNorm.

    Parameters, with ``dk = key_dim``, ``dv = value_dim``::

        C (2 dk + 2 dv)  +  r (C + dk) + dk  +  dv C  +  dv / H  [+ W (2 dk + dv)  [+ 2 dk + dv with conv_bias]]

    for ``W_q, W_k, W_v, W_g``; ``W_1, W_2, b``; ``W_o``; the norm weight; the short convs.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int = 4,
        expand_k: float = 0.5,
        expand_v: float = 1.0,
        gate_low_rank_dim: int = 16,
        gate_logit_normalizer: float = 16.0,
        use_short_conv: bool = False,
        conv_size: int = 4,
        conv_bias: bool = False,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__(d_model)
        self.num_heads = check_positive_int("num_heads", num_heads)
        check_positive_int("gate_low_rank_dim", gate_low_rank_dim)
        if not gate_logit_normalizer > 0:
            raise ValueError(f"gate_logit_normalizer must be positive, got {gate_logit_normalizer!r}")
        self.key_dim = expanded_dim("expand_k", d_model, expand_k, num_heads)
        self.value_dim = expanded_dim("expand_v", d_model, expand_v, num_heads)
        self.head_k_dim = self.key_dim // num_heads
        self.head_v_dim = self.value_dim // num_heads
        self.gate_logit_normalizer = float(gate_logit_normalizer)
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.gk_proj = nn.Sequential(
            nn.Linear(d_model, gate_low_rank_dim, bias=False), nn.Linear(gate_low_rank_dim, self.key_dim, bias=True)
        )
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)
        self.g_norm = nn.RMSNorm(self.head_v_dim, eps=norm_eps)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        qkv = 2 * self.key_dim + self.value_dim
        self.conv = ShortConv(qkv, conv_size, bias=conv_bias) if use_short_conv else None

    def forward(self, x: torch.Tensor, state: GLAState | None = None) -> tuple[torch.Tensor, GLAState]:
        """``x [B, L, C]`` -> ``(y [B, L, C], GLAState after step L)``; one ``chunk_gla`` over the ``L`` steps."""
        self.check_input("x", x, 3)
        self._check_state(state, x.shape[0])
        q, k, v, conv = self._qkv(x, state)
        o, recurrent = chunk_gla(
            q,
            k,
            v,
            self._log_gate(x),
            initial_state=None if state is None else state.recurrent,
            output_final_state=True,
        )
        return self._output(o, x), GLAState(recurrent, conv)

    def step(self, x_t: torch.Tensor, state: GLAState | None = None) -> tuple[torch.Tensor, GLAState]:
        """``x_t [B, C]`` -> ``(y_t [B, C]``, the next ``GLAState``), through ``chunk_gla_step``."""
        self.check_input("x_t", x_t, 2)
        self._check_state(state, x_t.shape[0])
        q, k, v, conv = self._qkv(x_t.unsqueeze(1), state)
        o, recurrent = chunk_gla_step(
            q[:, 0], k[:, 0], v[:, 0], self._log_gate(x_t), None if state is None else state.recurrent
        )
        return self._output(o, x_t), GLAState(recurrent, conv)

    def _qkv(self, x: torch.Tensor, state: GLAState | None) -> tuple[torch.Tensor, ...]:
        """``q, k [B, L, H, K]``, ``v [B, L, H, V]`` from ``x [B, L, C]``, and the next conv cache (or None)."""
        qkv = torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1)
        conv = None
        if self.conv is not None:
            qkv, conv = self.conv(qkv, None if state is None else state.conv)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=-1)
        heads = self.num_heads
        return q.unflatten(-1, (heads, -1)), k.unflatten(-1, (heads, -1)), v.unflatten(-1, (heads, -1)), conv

    def _log_gate(self, x: torch.Tensor) -> torch.Tensor:
        """``logsigmoid(W_2 W_1 x + b) / normaliser`` as ``[..., H, K]``."""
        return (F.logsigmoid(self.gk_proj(x)) / self.gate_logit_normalizer).unflatten(-1, (self.num_heads, -1))

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``W_o concat_h(RMSNorm(o) * swish(W_g x))`` for ``o [..., H, V]`` and ``x [..., C]``."""
        gate = F.silu(self.g_proj(x)).unflatten(-1, (self.num_heads, -1))
        return self.o_proj((self.g_norm(o) * gate).flatten(-2))

    def _check_state(self, state: GLAState | None, batch: int) -> None:
        conv = None if self.conv is None else (batch, self.conv.channels, self.conv.kernel_size - 1)
        recurrent = (batch, self.num_heads, self.head_k_dim, self.head_v_dim)
        check_mixer_state(state, GLAState, {"recurrent": recurrent, "conv": conv})
