"""Mamba-1 block as a mixer (Gu & Dao 2023, ``mamba_ssm/modules/mamba_simple.py``), with the bidirectional
variant of Vision Mamba (Zhu et al. 2024, ``bimamba_type="v2"``) and LION.

Per step, with ``E = expand * d_model`` inner channels, ``N = d_state``, ``R = dt_rank``::

    x, z   = in_proj(u)                                    # [.., 2E] split in two
    x      = silu(causal_conv1d(x))                        # depthwise over time, kernel d_conv, with bias
    dt, B, C = x_proj(x)                                   # [.., R + 2N] split
    dt     = softplus(dt_proj.weight dt + dt_proj.bias)    # [.., E]
    h_t    = exp(dt A) h_{t-1} + dt B x_t,  y_t = C h_t + D x_t,  y *= silu(z)
    out    = out_proj(y)

Initialisation as in mamba-ssm: ``dt_proj.weight`` uniform in ``±dt_scale R^-1/2``; ``dt_proj.bias =
softplus^-1(dt)`` with ``dt`` log-uniform in ``[dt_min, dt_max]`` clamped below at ``dt_init_floor``;
S4D-real ``A = -exp(A_log)``, ``A_log[e, n] = log(n + 1)``; ``D = 1``; the linear layers and the conv keep
PyTorch's default init. Parameter names follow mamba-ssm and Vim (``conv1d_b``, ``x_proj_b``, ``dt_proj_b``,
``A_b_log``, ``D_b``), so their checkpoints load as they are.

``bidirectional=True``: the in and out projections are shared; a second conv, ``x_proj``, ``dt_proj``, ``A`` and
``D`` read the sequence backwards (the conv on the flipped sequence, the scan with ``reverse=True``), and
the two gated outputs are summed before ``out_proj``, or averaged with ``divide_out=True`` (Vim).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...kernels.causal_conv1d import causal_conv1d, causal_conv1d_step
from ..scan import selective_scan, selective_scan_step
from .base import Mixer
from .registry import register_mixer

MambaState = tuple[torch.Tensor, torch.Tensor]


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def dt_bias_init(width: int, dt_min: float, dt_max: float, dt_init_floor: float) -> torch.Tensor:
    """mamba-ssm's ``dt_proj`` bias ``[width] = softplus^-1(dt)`` with ``dt`` log-uniform in ``[dt_min, dt_max]``
    and at least ``dt_init_floor``, so that ``softplus(bias)`` starts at those time steps."""
    dt = torch.exp(torch.rand(width) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))


def _direction(d_inner, d_state, d_conv, dt_rank, conv_bias, dt_min, dt_max, dt_init_floor, dt_scale):
    """What each scan direction owns, initialised as in mamba-ssm: ``(conv1d, x_proj, dt_proj, A_log, D)``.

    ``A_log`` and ``D`` carry ``_no_weight_decay`` and ``dt_proj.bias`` carries ``_no_reinit``, as in mamba-ssm.
    """
    conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1, bias=conv_bias)
    x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
    dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
    std = dt_scale * dt_rank**-0.5
    nn.init.uniform_(dt_proj.weight, -std, std)
    with torch.no_grad():
        dt_proj.bias.copy_(dt_bias_init(d_inner, dt_min, dt_max, dt_init_floor))
    dt_proj.bias._no_reinit = True
    A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
    D = nn.Parameter(torch.ones(d_inner))
    A_log._no_weight_decay = D._no_weight_decay = True
    return conv1d, x_proj, dt_proj, A_log, D


@register_mixer("mamba")
class Mamba(Mixer):
    """The Mamba-1 block; the state is ``(conv_state [B, E, d_conv-1]`` in the activations' dtype,
    ``ssm_state [B, E, N]`` float32).

    Args:
        d_model: channels of the input and output.
        d_state: ``N``, state size per inner channel (16).
        d_conv: width of the causal depthwise conv (4).
        expand: ``E = expand * d_model`` inner channels (2).
        dt_rank: rank of the ``dt`` projection; ``"auto"`` is ``ceil(d_model / 16)``.
        dt_min, dt_max, dt_init_floor, dt_scale: the ``dt`` initialisation (module docstring).
        conv_bias: bias in the conv (True); bias: bias in ``in_proj`` and ``out_proj`` (False).
        bidirectional: add a backward branch (Vim ``bimamba v2``, LION); ``divide_out`` averages the branches.

    Parameters: ``in_proj`` ``2 E d_model`` and ``out_proj`` ``E d_model`` (plus ``2 E + d_model`` with
    ``bias``); per direction ``E d_conv + E`` (conv), ``E (R + 2N)`` (``x_proj``), ``R E + E`` (``dt_proj``),
    ``E N`` (``A_log``) and ``E`` (``D``).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        conv_bias: bool = True,
        bias: bool = False,
        bidirectional: bool = False,
        divide_out: bool = False,
    ) -> None:
        super().__init__(d_model)
        self.d_state = _positive_int("d_state", d_state)
        self.d_conv = _positive_int("d_conv", d_conv)
        self.d_inner = _positive_int("expand", expand) * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else _positive_int("dt_rank", dt_rank)
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min} and dt_max={dt_max}")
        if divide_out and not bidirectional:
            raise ValueError("divide_out=True averages the two directions and needs bidirectional=True")
        self.bidirectional, self.divide_out = bidirectional, divide_out
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        branch = (self.d_inner, d_state, d_conv, self.dt_rank, conv_bias, dt_min, dt_max, dt_init_floor, dt_scale)
        self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D = _direction(*branch)
        if bidirectional:
            self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b = _direction(*branch)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, x: torch.Tensor, state: MambaState | None = None) -> tuple[torch.Tensor, MambaState | None]:
        """``x [B, L, d_model]`` -> ``(y [B, L, d_model]``, the state after the last step), from ``state`` or zeros.

        A bidirectional mixer takes no state and returns None for it (its backward branch reads the future).
        """
        self.check_input("x", x, 3)
        if self.bidirectional and state is not None:
            raise ValueError("a bidirectional mamba mixer runs over whole sequences and takes no state")
        conv_state, ssm_state = self._split_state(state, x.shape[0], x.device)
        xs, z = self._in_projections(x)
        y, new_state = self._branch(xs, z, "", conv_state, ssm_state, reverse=False)
        if not self.bidirectional:
            return self.out_proj(y), new_state
        y_b, _ = self._branch(xs, z, "_b", None, None, reverse=True)
        return self.out_proj(torch.lerp(y, y_b, 0.5) if self.divide_out else y + y_b), None

    def step(self, x_t: torch.Tensor, state: MambaState | None = None) -> tuple[torch.Tensor, MambaState]:
        """``x_t [B, d_model]`` -> ``(y_t [B, d_model]``, the next state); unidirectional mixers only."""
        if self.bidirectional:
            raise ValueError("step() is not defined for a bidirectional mamba mixer (its backward branch reads the "
                             "future); run forward() over the whole sequence")  # fmt: skip
        self.check_input("x_t", x_t, 2)
        conv_state, ssm_state = self._split_state(state, x_t.shape[0], x_t.device)
        xs, z = self._in_projections(x_t)
        xs, conv_state = causal_conv1d_step(xs, self.conv1d.weight[:, 0], self.conv1d.bias, "silu", conv_state)
        dt, B, C = self.x_proj(xs).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        y, ssm_state = selective_scan_step(
            xs, F.linear(dt, self.dt_proj.weight), -torch.exp(self.A_log.float()), B[:, None], C[:, None],
            self.D, z, dt_bias=self.dt_proj.bias, dt_softplus=True, state=ssm_state,
        )  # fmt: skip
        return self.out_proj(y), (conv_state, ssm_state)

    def _in_projections(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``in_proj`` as two matmuls, one per half of its weight: ``x [B, L, d_model]`` -> ``xs, z [B, L, E]``,
        each contiguous (the conv and the scan read contiguous inputs; halves of one output would be copied)."""
        weight, bias = self.in_proj.weight, self.in_proj.bias
        halves = (None, None) if bias is None else bias.chunk(2)
        return tuple(F.linear(x, w, b) for w, b in zip(weight.chunk(2), halves, strict=True))

    def _branch(self, xs, z, suffix: str, conv_state, ssm_state, reverse: bool):
        """One direction: conv + SiLU, ``x_proj``, ``dt_proj`` and the selective scan gated by ``silu(z)``. The scan
        reads ``D`` and ``dt_bias`` in float32 whatever their dtype (no cast kernels for a 16-bit model); ``A`` is
        formed in float32 here, as ``exp`` of a 16-bit ``A_log`` would round."""
        conv = getattr(self, "conv1d" + suffix)
        x_proj, dt_proj = getattr(self, "x_proj" + suffix), getattr(self, "dt_proj" + suffix)
        A_log, D = getattr(self, "A_b_log" if suffix else "A_log"), getattr(self, "D" + suffix)
        if reverse:
            xs = causal_conv1d(xs, conv.weight[:, 0], conv.bias, "silu", reverse=True)[0]
        else:
            xs, conv_state = causal_conv1d(xs, conv.weight[:, 0], conv.bias, "silu", conv_state, True)
        projection = x_proj(xs)
        dt = F.linear(projection[..., : self.dt_rank], dt_proj.weight)
        readins = projection[..., self.dt_rank :].unflatten(-1, (2, self.d_state)).permute(2, 0, 1, 3).contiguous()
        B, C = readins[:, :, :, None]  # [B, L, 1, N] each, contiguous: one copy for both
        y, ssm_state = selective_scan(
            xs, dt, -torch.exp(A_log.float()), B, C, D, z, dt_bias=dt_proj.bias, dt_softplus=True,
            initial_state=ssm_state, output_final_state=not reverse, reverse=reverse,
        )  # fmt: skip
        return y, (None if reverse else (conv_state, ssm_state))

    def _split_state(self, state: MambaState | None, batch: int, device: torch.device):
        if state is None:
            return None, None
        if not (isinstance(state, tuple | list) and len(state) == 2):
            raise TypeError(f"state must be a (conv_state, ssm_state) pair, got {type(state).__name__}")
        conv_state, ssm_state = state
        expected = {"conv_state": (conv_state, self.d_conv - 1), "ssm_state": (ssm_state, self.d_state)}
        for name, (t, last) in expected.items():
            shape = (batch, self.d_inner, last)
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise TypeError(f"{name} must be a floating tensor {list(shape)}, got {getattr(t, 'dtype', t)!r}")
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} must be [B, E, ...] = {list(shape)}, got shape {tuple(t.shape)}")
            if t.device != device:
                raise ValueError(f"{name} is on {t.device} but x is on {device}")
        return conv_state, ssm_state
