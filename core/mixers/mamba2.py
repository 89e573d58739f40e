"""Mamba-2: the SSD layer (Dao and Gu, ICML 2024) with one group of B/C (``ngroups = 1``), through ``chunk_gla``.

With ``d_inner = expand * C`` split into ``H = d_inner / P`` heads of ``P = headdim`` channels and a state of
``N = d_state`` per channel, for the input ``u_t [C]``::

    z_t, xBC_t, dt_t = W_in u_t                                     [d_inner], [d_inner + 2N], [H]
    x_t, B_t, C_t    = silu(causal depthwise conv_W(xBC)_t)         [d_inner], [N], [N]
    dt_t             = softplus(dt_t + dt_bias),   A = -exp(A_log)                          per head
    h_t              = exp(dt_t A) h_{t-1} + B_t^T (dt_t x_t)                               [N, P] per head
    y_t              = C_t h_t + D x_t                                                      [P] per head
    out_t            = W_out( RMSNorm(y_t * silu(z_t)) )                                    over all d_inner

That is ``chunk_gla`` with ``q = C``, ``k = B`` (shared by the heads), ``v = dt * x``, the scalar log gate
``g = dt * A [B, T, H]`` and ``scale = 1``. The gated RMSNorm multiplies before normalising (mamba-ssm's
``RMSNormGated(norm_before_gate=False)``, one group).

Initialisation as in mamba-ssm's ``Mamba2``: ``dt`` log-uniform in ``[dt_min, dt_max]`` (floored at
``dt_init_floor``) and ``dt_bias = softplus^-1(dt)``; ``A`` uniform in ``A_init_range``, ``A_log = log A``; ``D = 1``;
the norm weight one; ``W_in``, ``W_out`` and the conv as PyTorch initialises ``Linear``/``Conv1d``.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..scan import chunk_gla, chunk_gla_step
from .base import Mixer
from .checks import check_mixer_state, check_positive_int
from .registry import register_mixer
from .short_conv import ShortConv


class Mamba2State(NamedTuple):
    """``recurrent [B, H, N, P]`` float32 (the SSM state ``h``), ``conv [B, d_inner + 2N, W-1]`` (last conv inputs)."""

    recurrent: torch.Tensor
    conv: torch.Tensor


@register_mixer("mamba2")
class Mamba2(Mixer):
    """Scalar-decay SSD layer: in_proj, short conv, per-head scalar decay, D skip, gated RMSNorm, out_proj.

    Args:
        d_model: channels ``C``.
        d_state: state size ``N`` per channel.
        d_conv: kernel ``W`` of the causal depthwise conv.
        expand: ``d_inner = expand * C``.
        headdim: channels ``P`` per head; ``d_inner`` must be a multiple.
        dt_min, dt_max, dt_init_floor: initial step sizes.
        A_init_range: ``(low, high)`` of the initial ``-A``.
        conv_bias: bias in the conv (mamba-ssm: True).
        norm_eps: epsilon of the gated RMSNorm.

    Parameters, with ``E = d_inner``::

        C (2E + 2N + H)  +  (E + 2N)(W + 1)  +  3H  +  E  +  E C

    for ``W_in``; the conv weights and biases (``(E + 2N) W`` without bias); ``dt_bias, A_log, D``; the norm weight;
    ``W_out``.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 128,
        d_conv: int = 4,
        expand: int = 2,
        headdim: int = 64,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        conv_bias: bool = True,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__(d_model)
        self.d_state = check_positive_int("d_state", d_state)
        self.d_inner = check_positive_int("expand", expand) * d_model
        self.headdim = check_positive_int("headdim", headdim)
        if self.d_inner % headdim:
            raise ValueError(f"d_inner = expand * d_model = {self.d_inner} must be a multiple of headdim = {headdim}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min} and dt_max={dt_max}")
        low, high = A_init_range
        if not 0 < low <= high:
            raise ValueError(f"A_init_range must be (low, high) with 0 < low <= high, got {A_init_range!r}")
        self.num_heads = self.d_inner // headdim
        heads = self.num_heads
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner + 2 * d_state + heads, bias=False)
        self.conv = ShortConv(self.d_inner + 2 * d_state, d_conv, bias=conv_bias)
        log_dt = torch.rand(heads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        dt = log_dt.exp().clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.empty(heads).uniform_(low, high).log())
        self.D = nn.Parameter(torch.ones(heads))
        self.norm = nn.RMSNorm(self.d_inner, eps=norm_eps)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, x: torch.Tensor, state: Mamba2State | None = None) -> tuple[torch.Tensor, Mamba2State]:
        """``x [B, L, C]`` -> ``(y [B, L, C], Mamba2State after step L)``; one ``chunk_gla`` over the ``L`` steps."""
        self.check_input("x", x, 3)
        self._check_state(state, x.shape[0])
        z, xs, (q, k, v, g), conv = self._scan_inputs(x, state)
        initial = None if state is None else state.recurrent
        o, recurrent = chunk_gla(q, k, v, g, scale=1.0, initial_state=initial, output_final_state=True)
        return self._output(o, xs, z), Mamba2State(recurrent, conv)

    def step(self, x_t: torch.Tensor, state: Mamba2State | None = None) -> tuple[torch.Tensor, Mamba2State]:
        """``x_t [B, C]`` -> ``(y_t [B, C]``, the next ``Mamba2State``), through ``chunk_gla_step``."""
        self.check_input("x_t", x_t, 2)
        self._check_state(state, x_t.shape[0])
        z, xs, scan, conv = self._scan_inputs(x_t.unsqueeze(1), state)
        q, k, v, g = (t[:, 0] for t in scan)
        o, recurrent = chunk_gla_step(q, k, v, g, None if state is None else state.recurrent, scale=1.0)
        return self._output(o, xs[:, 0], z[:, 0]), Mamba2State(recurrent, conv)

    def _scan_inputs(self, x: torch.Tensor, state: Mamba2State | None) -> tuple:
        """``z, x [B, L, E]``; ``chunk_gla``'s ``q = C``, ``k = B`` ``[B, L, H, N]``, ``v = dt x [B, L, H, P]``,
        ``g = dt A [B, L, H]``; and the next conv cache."""
        z, xbc, dt = self.in_proj(x).split([self.d_inner, self.d_inner + 2 * self.d_state, self.num_heads], dim=-1)
        xbc, conv = self.conv(xbc, None if state is None else state.conv)
        xs, b, c = xbc.split([self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias)
        q = c.unsqueeze(-2).expand(*c.shape[:-1], self.num_heads, self.d_state)
        k = b.unsqueeze(-2).expand_as(q)
        v = xs.unflatten(-1, (self.num_heads, self.headdim)) * dt.unsqueeze(-1)
        return z, xs, (q, k, v, dt * -self.A_log.exp()), conv

    def _output(self, o: torch.Tensor, xs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``W_out RMSNorm((o + D x) * silu(z))`` for ``o [..., H, P]`` and ``xs, z [..., E]``."""
        y = (o + self.D.unsqueeze(-1) * xs.unflatten(-1, (self.num_heads, -1))).flatten(-2)
        return self.out_proj(self.norm(y * F.silu(z)))

    def _check_state(self, state: Mamba2State | None, batch: int) -> None:
        recurrent = (batch, self.num_heads, self.d_state, self.headdim)
        conv = (batch, self.conv.channels, self.conv.kernel_size - 1)
        check_mixer_state(state, Mamba2State, {"recurrent": recurrent, "conv": conv})
