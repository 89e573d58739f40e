"""RetNet: multi-scale retention (Sun, Dong, Huang, Ma, Xia, Xue, Wang, Wei, 2023), recurrent form.

Per head ``h`` (``H`` heads, ``K = key_dim / H``, ``V = value_dim / H``) at position ``n`` (counted from the start of
the sequence, across calls)::

    q_n, k_n, v_n = Theta_n W_q x_n, Theta_n W_k x_n, W_v x_n        Theta_n: rotation of each pair (2i, 2i+1) of
                                                                     channels by the angle n theta_i
    S_n           = gamma_h S_{n-1} + k_n^T v_n,   gamma_h = 1 - 2^(-5-h)                          [K, V]
    o_n           = K^-1/2 q_n S_n                                                                 [V]
    y_n           = W_o( swish(W_g x_n) * GroupNorm_H(concat_h o_n) )

LION's RetNet operator (``rotary=False, output_gate=False``) drops the rotation, and, as its blocks end in an MLP,
the gate and the GroupNorm with it: ``y_n = W_o concat_h o_n`` (LION's ``MultiScaleRetention`` with ``used_MLP``).

``theta_i = 10000^(-i / (K/2 - 1))`` for ``i < K/2``, as in the authors' code (torchscale): the ``e^{i n theta}`` of
the paper's xPos-derived rotation, whose scaling term the fixed decay ``gamma`` replaces. ``q_n . k_m`` depends on
``n - m`` only, so rotating both by their absolute position is exact; the state carries the position reached, so
``step`` and pieces of a sequence agree with one ``forward``. The recurrence is one ``chunk_gla`` with the fixed
log-gate ``[H] = log gamma``.

Initialisation as in torchscale: ``W_q, W_k, W_v, W_g`` ``xavier_uniform(gain=2^-2.5)``, ``W_o``
``xavier_uniform(gain=out_gain)``, ``2^-1`` by default (LION: ``2^-2.5`` for every projection); GroupNorm weight one,
bias zero.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..scan import chunk_gla, chunk_gla_step
from .base import Mixer
from .checks import check_mixer_state, check_positive_int, expanded_dim
from .registry import register_mixer


class RetNetState(NamedTuple):
    """``recurrent [B, H, K, V]`` float32, and ``offset``: the position of the next input (steps seen so far)."""

    recurrent: torch.Tensor
    offset: int


@register_mixer("retnet")
class RetNet(Mixer):
    """Multi-scale retention: fixed per-head decays, rotary positions, GroupNorm and a swish output gate (the last
    three optional, for LION's operator).

    Args:
        d_model: channels ``C``.
        num_heads: heads ``H`` (decays ``1 - 2^-5``, ..., ``1 - 2^(-4-H)``).
        expand_k, expand_v: ``key_dim = C * expand_k`` (``K`` even), ``value_dim = C * expand_v`` (paper: 1 and 2).
        norm_eps: epsilon of the GroupNorm.
        rope_base: base of the rotation frequencies.
        rotary: rotate ``q, k`` by their positions (``False``: LION's retention, positions play no part).
        output_gate: ``W_o(swish(W_g x) * GroupNorm(o))``; ``False``: ``W_o o`` (LION's, with its blocks' MLP).
        out_gain: the gain of ``W_o``'s Xavier initialisation.

    Parameters, with ``dk = key_dim``, ``dv = value_dim``: ``2 C dk + 3 C dv + 2 dv`` (``W_q, W_k``; ``W_v, W_g, W_o``;
    GroupNorm weight and bias), ``2 C dk + 2 C dv`` without the output gate. The decays are a buffer, not trained.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int = 8,
        expand_k: float = 1.0,
        expand_v: float = 2.0,
        norm_eps: float = 1e-5,
        rope_base: float = 10000.0,
        rotary: bool = True,
        output_gate: bool = True,
        out_gain: float = 2**-1,
    ) -> None:
        super().__init__(d_model)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.key_dim = expanded_dim("expand_k", d_model, expand_k, num_heads)
        self.value_dim = expanded_dim("expand_v", d_model, expand_v, num_heads)
        self.head_k_dim = self.key_dim // num_heads
        self.head_v_dim = self.value_dim // num_heads
        if self.head_k_dim % 2:
            raise ValueError(f"the rotation needs an even head key dim K, got K = {self.head_k_dim}")
        self.norm_eps = norm_eps
        self.rotary = rotary
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.g_proj = self.group_norm = None
        if output_gate:
            self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)
            self.group_norm = nn.GroupNorm(num_heads, self.value_dim, eps=norm_eps)
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.g_proj):
            if proj is not None:
                nn.init.xavier_uniform_(proj.weight, gain=2**-2.5)
        nn.init.xavier_uniform_(self.o_proj.weight, gain=out_gain)
        heads = torch.arange(num_heads, dtype=torch.float64)
        self.register_buffer("log_decay", torch.log1p(-(2.0 ** (-5.0 - heads))).float(), persistent=False)
        half = self.head_k_dim // 2
        exponent = torch.linspace(0, 1, half, dtype=torch.float64) if half > 1 else torch.zeros(1, dtype=torch.float64)
        self.register_buffer("theta", (rope_base**-exponent).float(), persistent=False)

    def forward(self, x: torch.Tensor, state: RetNetState | None = None) -> tuple[torch.Tensor, RetNetState]:
        """``x [B, L, C]`` -> ``(y [B, L, C], RetNetState after step L)``; one ``chunk_gla`` over the ``L`` steps."""
        self.check_input("x", x, 3)
        self._check_state(state, x.shape[0])
        offset = 0 if state is None else state.offset
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)
        q, k, v = self._qkv(x, positions[:, None])
        initial = None if state is None else state.recurrent
        o, recurrent = chunk_gla(q, k, v, self.log_decay, initial_state=initial, output_final_state=True)
        return self._output(o, x), RetNetState(recurrent, offset + x.shape[1])

    def step(self, x_t: torch.Tensor, state: RetNetState | None = None) -> tuple[torch.Tensor, RetNetState]:
        """``x_t [B, C]`` -> ``(y_t [B, C]``, the next ``RetNetState``), through ``chunk_gla_step``."""
        self.check_input("x_t", x_t, 2)
        self._check_state(state, x_t.shape[0])
        offset = 0 if state is None else state.offset
        q, k, v = self._qkv(x_t, torch.tensor(offset, device=x_t.device))
        o, recurrent = chunk_gla_step(q, k, v, self.log_decay, None if state is None else state.recurrent)
        return self._output(o, x_t), RetNetState(recurrent, offset + 1)

    def _qkv(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q, k [..., H, K]`` (rotated when ``rotary``) and ``v [..., H, V]`` for ``x [..., C]`` at ``positions``
        (broadcastable against ``[..., H]``)."""
        q = self.q_proj(x).unflatten(-1, (self.num_heads, -1))
        k = self.k_proj(x).unflatten(-1, (self.num_heads, -1))
        if self.rotary:
            angle = positions.to(self.theta.dtype).unsqueeze(-1) * self.theta
            cos, sin = angle.cos(), angle.sin()
            q, k = self._rotate(q, cos, sin), self._rotate(k, cos, sin)
        return q, k, self.v_proj(x).unflatten(-1, (self.num_heads, -1))

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate each pair ``(x_2i, x_2i+1)`` of ``x [..., K]`` by the angle whose ``cos, sin`` are ``[..., K/2]``."""
        even, odd = x.unflatten(-1, (-1, 2)).unbind(-1)
        rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)
        return rotated.to(x.dtype)  # the float32 angles must not promote 16-bit q, k away from v's dtype

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``W_o(swish(W_g x) * GroupNorm_H(concat_h o))`` (or ``W_o concat_h o`` without the output gate) for
        ``o [..., H, V]`` and ``x [..., C]``."""
        flat = o.flatten(-2)
        if self.g_proj is None:
            return self.o_proj(flat)
        norm = self.group_norm
        normed = F.group_norm(flat.reshape(-1, self.value_dim), self.num_heads, norm.weight, norm.bias, norm.eps)
        return self.o_proj(F.silu(self.g_proj(x)) * normed.view_as(flat))

    def _check_state(self, state: RetNetState | None, batch: int) -> None:
        recurrent = (batch, self.num_heads, self.head_k_dim, self.head_v_dim)
        check_mixer_state(state, RetNetState, {"recurrent": recurrent})
        if state is not None and (
            not isinstance(state.offset, int) or isinstance(state.offset, bool) or state.offset < 0
        ):
            raise ValueError(f"state.offset must be a non-negative int (steps seen so far), got {state.offset!r}")
