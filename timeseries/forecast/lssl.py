"""Linear State-Space Layer (LSSL, Gu et al., NeurIPS 2021) and a forecaster built from it.

Each of ``H`` features ``u^h`` drives its own continuous state-space model with ``N`` states and ``M`` outputs::

    ẋ = A x + B u,   y = C x + D u          A [N, N] from HiPPO (LegS or LegT), B [N], C [M, N], D [M]

discretised with the feature's own step ``Δ_h`` by the generalised bilinear transform (GBT)::

    Ā = (I - αΔA)^{-1} (I + (1 - α)ΔA),   B̄ = Δ (I - αΔA)^{-1} B      α = 0: Euler, 1: backward Euler, ½: bilinear

and run either as a recurrence (``x_k = Ā x_{k-1} + B̄ u_k``, ``y_k = C x_k + D u_k``: the step mode, for
inference) or as a causal convolution with the kernel ``K = (C B̄, C Ā B̄, ..., C Ā^{L-1} B̄)`` (the convolution
mode, for training): the Krylov vectors ``Ā^k B̄`` by repeated squaring of ``Ā``, the convolution by FFT.

``learn`` chooses what trains: 0 keeps ``A, B`` at HiPPO (LSSL-fixed), 1 trains one ``A, B`` shared by all
features, 2 one per feature. ``log Δ`` starts log-uniform in ``[dt_min, dt_max]`` and trains (unless
``train_dt=False``). Both sets are exposed through ``param_groups()`` so that they can get their own learning
rates (the authors: 1e-3 for ``Δ``, 1e-4 for ``A, B``).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...core.hippo import hippo
from .base import ForecastModel
from .norm import SeriesNorm

LEARN_MODES = (0, 1, 2)


def discretize(
    A: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, alpha: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """GBT of ``A [..., N, N]``, ``B [..., N]`` with steps ``dt [H]``: ``(Ā [H, N, N], B̄ [H, N])`` (module
    docstring); ``A``, ``B`` either shared (no leading dimension) or one per feature (leading ``H``)."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    step_A = dt[:, None, None] * A
    left = eye - alpha * step_A
    A_bar = torch.linalg.solve(left, eye + (1 - alpha) * step_A)
    B_bar = dt[:, None] * torch.linalg.solve(left, B.expand(dt.shape[0], -1).unsqueeze(-1)).squeeze(-1)
    return A_bar, B_bar


def krylov(A: torch.Tensor, b: torch.Tensor, length: int) -> torch.Tensor:
    """``[b, A b, A² b, ..., A^{length-1} b]`` as ``[..., N, length]`` for ``A [..., N, N]``, ``b [..., N]``.

    Repeated squaring: with the first ``2^i`` columns known, multiplying them by ``A^{2^i}`` gives the next
    ``2^i``; ``log2(length)`` matrix products in all.
    """
    columns = b.unsqueeze(-1)
    power = A
    while columns.shape[-1] < length:
        columns = torch.cat([columns, power @ columns[..., : length - columns.shape[-1]]], dim=-1)
        if columns.shape[-1] < length:
            power = power @ power
    return columns


def causal_conv(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``y[b, t, h, m] = Σ_{s <= t} kernel[h, m, t - s] u[b, s, h]`` for ``u [B, L, H]``, ``kernel [H, M, L]``:
    one FFT of length ``2L`` (zero padding makes the circular convolution causal). Returns ``[B, L, H, M]``."""
    length = u.shape[1]
    n = 2 * length
    u_f = torch.fft.rfft(u.transpose(1, 2), n=n)  # [B, H, n/2 + 1]
    k_f = torch.fft.rfft(kernel, n=n)  # [H, M, n/2 + 1]
    y = torch.fft.irfft(u_f.unsqueeze(2) * k_f, n=n)[..., :length]  # [B, H, M, L]
    return y.permute(0, 3, 1, 2)


class LSSL(nn.Module):
    """``H`` independent state-space models (one per feature): ``u [B, L, H] -> y [B, L, H, M]``.

    Args:
        d_model: ``H``, features.
        state_size: ``N``, states per feature (the authors: 256).
        channels: ``M``, outputs per feature.
        measure: HiPPO initialisation of ``A, B``, ``"legs"`` or ``"legt"``.
        learn: 0 fixed ``A, B``; 1 trained and shared by all features; 2 trained, one per feature.
        alpha: GBT parameter (0.5: bilinear).
        dt_min, dt_max: range of the log-uniform initial steps.
        train_dt: whether ``log Δ`` trains.
    """

    def __init__(
        self,
        d_model: int,
        state_size: int = 64,
        channels: int = 1,
        measure: str = "legs",
        learn: int = 1,
        alpha: float = 0.5,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        train_dt: bool = True,
    ) -> None:
        super().__init__()
        if learn not in LEARN_MODES:
            raise ValueError(f"learn must be one of {LEARN_MODES}, got {learn!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        for name, value in (("d_model", d_model), ("channels", channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.d_model, self.state_size, self.channels, self.alpha = d_model, state_size, channels, alpha
        A, B = hippo(measure, state_size, dtype=torch.float32)
        if learn == 2:
            A, B = A.expand(d_model, -1, -1).clone(), B.expand(d_model, -1).clone()
        if learn == 0:
            self.register_buffer("A", A)
            self.register_buffer("B", B)
        else:
            self.A, self.B = nn.Parameter(A), nn.Parameter(B)
        log_dt = math.log(dt_min) + torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min))
        if train_dt:
            self.log_dt = nn.Parameter(log_dt)
        else:
            self.register_buffer("log_dt", log_dt)
        self.C = nn.Parameter(torch.randn(d_model, channels, state_size))
        self.D = nn.Parameter(torch.randn(d_model, channels))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"timescale": [log Δ], "transition": [A, B]}``; a group is empty when its parameters are fixed."""
        timescale = [self.log_dt] if isinstance(self.log_dt, nn.Parameter) else []
        transition = [self.A, self.B] if isinstance(self.A, nn.Parameter) else []
        return {"timescale": timescale, "transition": transition}

    def discretized(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Ā [H, N, N], B̄ [H, N])`` at the current ``Δ = exp(log Δ)``."""
        return discretize(self.A, self.B, self.log_dt.exp(), self.alpha)

    def kernel(self, length: int) -> torch.Tensor:
        """The convolution kernel ``K [H, M, length]``, ``K[h, :, k] = C_h Ā_h^k B̄_h``."""
        A_bar, B_bar = self.discretized()
        return torch.einsum("hmn,hnl->hml", self.C, krylov(A_bar, B_bar, length))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Convolution mode: ``u [B, L, H] -> y [B, L, H, M]`` from a zero initial state."""
        y = causal_conv(u, self.kernel(u.shape[1]))
        return y + u.unsqueeze(-1) * self.D

    def initial_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """The zero state ``[batch, H, N]``."""
        return torch.zeros(batch, self.d_model, self.state_size, device=device, dtype=self.C.dtype)

    def step(
        self, u_t: torch.Tensor, state: torch.Tensor, system: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step mode: ``(u_t [B, H], x_{t-1} [B, H, N]) -> (y_t [B, H, M], x_t)`` with ``system =
        self.discretized()`` (computed once per sequence by the caller)."""
        A_bar, B_bar = system
        state = torch.einsum("hnk,bhk->bhn", A_bar, state) + B_bar * u_t.unsqueeze(-1)
        y_t = torch.einsum("hmn,bhn->bhm", self.C, state) + u_t.unsqueeze(-1) * self.D
        return y_t, state


class LSSLLayer(nn.Module):
    """``u [B, L, H] -> [B, L, H]``: ``Linear(H·M -> H)(Dropout(GELU(LSSL(u))))``, the authors' layer."""

    def __init__(self, d_model: int, dropout: float = 0.0, **ssm_args) -> None:
        super().__init__()
        self.ssm = LSSL(d_model, **ssm_args)
        self.dropout = nn.Dropout(dropout)
        self.mix = nn.Linear(d_model * self.ssm.channels, d_model)

    def _mix(self, y: torch.Tensor) -> torch.Tensor:
        return self.mix(self.dropout(F.gelu(y)).flatten(-2))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self._mix(self.ssm(u))

    def step(
        self, u_t: torch.Tensor, state: torch.Tensor, system: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u_t [B, H], state [B, H, N]) -> (out_t [B, H], state)``."""
        y_t, state = self.ssm.step(u_t, state, system)
        return self._mix(y_t), state


class LSSLBlock(nn.Module):
    """Pre-norm residual block ``x + LSSLLayer(LayerNorm(x))`` on ``[B, L, H]``."""

    def __init__(self, d_model: int, dropout: float, **ssm_args) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.layer = LSSLLayer(d_model, dropout, **ssm_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer(self.norm(x))

    def step(
        self, x_t: torch.Tensor, state: torch.Tensor, system: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.layer.step(self.norm(x_t), state, system)
        return x_t + out, state


class LSSLForecaster(ForecastModel):
    """An LSSL backbone that forecasts by filling in masked future steps (the S4 papers' forecasting setup).

    The model reads ``L + H`` positions: the ``L`` input steps ``[x_t, time features, 0]`` followed by ``H``
    future steps ``[0, time features, 1]`` (values unknown, calendar known, the last entry flags "to forecast").
    A linear encoder maps each position to ``d_model``, ``n_layers`` pre-norm ``LSSLBlock``s mix over time, a
    final LayerNorm and a linear decoder read the ``H`` future positions out as ``[B, H, C]``. ``forward`` runs the
    convolution mode; ``forecast_recurrent`` gives the same numbers step by step (the inference mode).

    Args:
        input_len, horizon, n_channels, n_time_features: see ``ForecastModel``.
        d_model: features of the backbone (``H`` of each LSSL).
        n_layers: blocks.
        state_size, channels, measure, learn, alpha, dt_min, dt_max, train_dt: see ``LSSL``.
        dropout: dropout after each layer's GELU.
        norm: standardise each input window per channel and undo it on the forecast.
    """

    def __init__(
        self,
        input_len: int = 168,
        horizon: int = 168,
        n_channels: int = 1,
        n_time_features: int = 4,
        d_model: int = 64,
        n_layers: int = 4,
        state_size: int = 64,
        channels: int = 1,
        measure: str = "legs",
        learn: int = 1,
        alpha: float = 0.5,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        train_dt: bool = True,
        dropout: float = 0.1,
        norm: bool = True,
    ) -> None:
        super().__init__(input_len, horizon, n_channels, n_time_features)
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        ssm_args = dict(
            state_size=state_size,
            channels=channels,
            measure=measure,
            learn=learn,
            alpha=alpha,
            dt_min=dt_min,
            dt_max=dt_max,
            train_dt=train_dt,
        )
        self.norm = norm
        self.encoder = nn.Linear(n_channels + n_time_features + 1, d_model)
        self.blocks = nn.ModuleList(LSSLBlock(d_model, dropout, **ssm_args) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.decoder = nn.Linear(d_model, n_channels)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {"timescale": [], "transition": []}
        for block in self.blocks:
            for name, params in block.layer.ssm.param_groups().items():
                groups[name] += params
        return groups

    def _positions(
        self, x: torch.Tensor, x_mark: torch.Tensor, y_mark: torch.Tensor
    ) -> tuple[torch.Tensor, SeriesNorm | None]:
        """Encoded positions ``[B, L + H, d_model]`` and the window statistics (None without ``norm``)."""
        self.check_inputs(x, x_mark, y_mark)
        stats = SeriesNorm(x) if self.norm else None
        if stats is not None:
            x = stats.normalize(x)
        batch = x.shape[0]
        past = torch.cat([x, x_mark, x.new_zeros(batch, self.input_len, 1)], dim=-1)
        unknown = x.new_zeros(batch, self.horizon, self.n_channels)
        future = torch.cat([unknown, y_mark, x.new_ones(batch, self.horizon, 1)], dim=-1)
        return self.encoder(torch.cat([past, future], dim=1)), stats

    def _readout(self, h: torch.Tensor, stats: SeriesNorm | None) -> torch.Tensor:
        y = self.decoder(self.final_norm(h[:, self.input_len :]))
        return stats.denormalize(y) if stats is not None else y

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor, y_mark: torch.Tensor) -> torch.Tensor:
        h, stats = self._positions(x, x_mark, y_mark)
        for block in self.blocks:
            h = block(h)
        return self._readout(h, stats)

    @torch.no_grad()
    def forecast_recurrent(self, x: torch.Tensor, x_mark: torch.Tensor, y_mark: torch.Tensor) -> torch.Tensor:
        """``forward``'s forecast computed in step mode, one position at a time (no gradients)."""
        h, stats = self._positions(x, x_mark, y_mark)
        systems = [block.layer.ssm.discretized() for block in self.blocks]
        states = [block.layer.ssm.initial_state(x.shape[0], x.device) for block in self.blocks]
        outputs = []
        for t in range(h.shape[1]):
            h_t = h[:, t]
            for i, block in enumerate(self.blocks):
                h_t, states[i] = block.step(h_t, states[i], systems[i])
            outputs.append(h_t)
        return self._readout(torch.stack(outputs, dim=1), stats)
