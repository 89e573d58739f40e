"""S5: a diagonal complex state-space layer with a parallel scan (Smith, Warrington, Linderman, ICLR 2023).

Continuous time, per state mode ``p`` (``P`` modes, ``H = d_model`` channels)::

    h'(t) = Lambda h(t) + B u(t),    y(t) = Re(C h(t)) + D u(t)

Zero-order hold with a trainable timescale ``dt_p`` per mode gives the recurrence run here::

    h_k = Lambda_bar * h_{k-1} + B_bar u_k,    Lambda_bar = exp(Lambda dt),    B_bar = (Lambda_bar - 1) / Lambda * B

Initialisation (S4D-Lin, Gu et al. 2022, a diagonal approximation of HiPPO-LegS that S5 also discusses):
``Lambda_p = -1/2 + i pi p``; ``dt`` log-uniform in ``[dt_min, dt_max]``; ``B`` and ``C`` complex normal with
variance ``1/H`` and ``1/P``; ``D`` standard normal. ``Re(Lambda) = -exp(log_neg_real)`` stays negative, so every
mode is stable. Unlike the paper's conjugate-pair form (``P/2`` modes and ``2 Re``), all ``P`` modes are kept.
"""

import math

import torch
from torch import nn

from ..scan import linear_scan, linear_scan_step
from .base import Mixer
from .registry import register_mixer


@register_mixer("s5")
class S5(Mixer):
    """Diagonal complex SSM mixer; the state is ``h [B, P]`` complex64.

    Args:
        d_model: channels ``H`` of the input and output.
        state_size: complex state modes ``P``.
        dt_min, dt_max: range of the initial timescales (log-uniform), in steps of the sequence.

    Parameters (``3P + 4PH + H`` in all): ``log_neg_real``, ``imag``, ``log_dt`` ``[P]``; ``B [P, H, 2]`` and
    ``C [H, P, 2]`` (real and imaginary parts); ``D [H]``.
    """

    def __init__(self, d_model: int, state_size: int = 64, dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__(d_model)
        if not isinstance(state_size, int) or isinstance(state_size, bool) or state_size < 1:
            raise ValueError(f"state_size must be a positive int, got {state_size!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min} and dt_max={dt_max}")
        self.state_size = state_size
        modes = torch.arange(state_size, dtype=torch.float32)
        self.log_neg_real = nn.Parameter(torch.full((state_size,), math.log(0.5)))
        self.imag = nn.Parameter(math.pi * modes)
        log_dt = torch.rand(state_size) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.B = nn.Parameter(torch.randn(state_size, d_model, 2) / math.sqrt(2 * d_model))
        self.C = nn.Parameter(torch.randn(d_model, state_size, 2) / math.sqrt(2 * state_size))
        self.D = nn.Parameter(torch.randn(d_model))

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-order hold: ``Lambda_bar [P]`` and ``B_bar [P, H]``, both complex64."""
        lam = torch.complex(-self.log_neg_real.exp(), self.imag)
        lam_bar = torch.exp(lam * self.log_dt.exp())
        b_bar = ((lam_bar - 1) / lam).unsqueeze(-1) * torch.view_as_complex(self.B)
        return lam_bar, b_bar

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, L, H]`` -> ``(y [B, L, H]`` in ``x``'s dtype, ``h_L [B, P]`` complex64), from ``state`` or zeros.

        The ``L`` steps run as one ``linear_scan`` with ``a = Lambda_bar`` broadcast to ``[B, L, P]``.
        """
        self.check_input("x", x, 3)
        self._check_state(state, x.shape[0])
        with torch.autocast(x.device.type, enabled=False):
            u = x.float()
            lam_bar, bu = self._drive(u)
            h, final_state = linear_scan(lam_bar.expand_as(bu), bu, initial_state=state, output_final_state=True)
            y = self._readout(h, u)
        return y.to(x.dtype), final_state

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_t [B, H]`` -> ``(y_t [B, H]``, ``h_t [B, P]`` complex64), from ``state`` or zeros."""
        self.check_input("x_t", x_t, 2)
        self._check_state(state, x_t.shape[0])
        with torch.autocast(x_t.device.type, enabled=False):
            u = x_t.float()
            lam_bar, bu = self._drive(u)
            h = linear_scan_step(lam_bar.expand_as(bu), bu, state)
            y = self._readout(h, u)
        return y.to(x_t.dtype), h

    def _drive(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Lambda_bar [P]`` and the input term ``B_bar u [..., P]`` (complex64) for ``u [..., H]`` float32."""
        lam_bar, b_bar = self.discretize()
        return lam_bar, torch.complex(u @ b_bar.real.T, u @ b_bar.imag.T)

    def _readout(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``Re(C h) + D u`` for ``h [..., P]`` complex and ``u [..., H]`` float32."""
        c = torch.view_as_complex(self.C)
        return h.real @ c.real.T - h.imag @ c.imag.T + self.D * u

    def _check_state(self, state: torch.Tensor | None, batch: int) -> None:
        if state is None:
            return
        if not isinstance(state, torch.Tensor) or state.dtype != torch.complex64:
            kind = state.dtype if isinstance(state, torch.Tensor) else type(state).__name__
            raise TypeError(f"state must be a complex64 tensor [B, P], got {kind}")
        if tuple(state.shape) != (batch, self.state_size):
            raise ValueError(f"state must be [B, P] = [{batch}, {self.state_size}], got shape {tuple(state.shape)}")
