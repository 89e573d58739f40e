"""RWKV-6 ("Finch") time mixing (Peng et al., "Eagle and Finch", 2024), through ``chunk_gla``.

For the input ``x_t [C]`` and the previous input ``x_{t-1}`` (token shift; the state carries it across calls),
``dx_t = x_{t-1} - x_t`` and, for each ``* in {w, k, v, r, g}`` (data-dependent linear interpolation, ddlerp)::

    m_t^*    = B^* tanh(A (x_t + mu_x * dx_t))                       low rank D_mix = 32, A [5 D_mix, C], B^* [C, D_mix]
    x_t^*    = x_t + dx_t * (mu_* + m_t^*)
    r, k, v  = W_r x^r, W_k x^k, W_v x^v                                                [H, K] per step
    w_t      = exp(-exp(d + B_w tanh(A_w x^w)))                     decay per key, low rank D_decay = 64
    S_t      = diag(w_t) S_{t-1} + k_t^T v_t                                            [K, V] per head
    o_t      = r_t S_{t-1} + (r_t * u * k_t) . v_t                  the current token enters only through the bonus u
    y_t      = W_o( GroupNorm_H(concat_h o_t) * silu(W_g x^g) )

``K = V = head_dim`` and ``H = C / head_dim`` (attention width ``C``, as in the paper). No ``1/sqrt(K)`` scale.

How ``chunk_gla`` gives ``o``: it reads out ``q_t S'_t`` after adding step ``t``, while RWKV reads ``S_{t-1}``. The
inputs are shifted one step later inside a sequence of ``L + 1`` steps:
``q' = (r_1, ..., r_L, 0)``, ``k' = (0, k_1, ..., k_L)``, ``v' = (0, v_1, ..., v_L)``,
``g' = (0, log w_1, ..., log w_L)``, from ``S'_0 = S_0``. Then ``S'_1 = S_0`` and by induction
``S'_{t+1} = diag(w_t) S'_t + k_t^T v_t = S_t``, so ``o'_t = r_t S_{t-1}`` for ``t <= L`` and the last state is
``S'_{L+1} = S_L``, exact and without dividing by any decay. The bonus term is added outside. ``step`` reads
``r_t S_{t-1}`` directly and updates the state with ``chunk_gla_step``.

Initialisation as in the authors' ``RWKV_Tmix_x060`` for layer ``l`` of ``n`` (``a = l / (n - 1)``,
``b = 1 - l / n``, ``c_i = i / C``): ``mu_x = mu_w = mu_k = 1 - c^b``, ``mu_v = 1 - c^b - 0.3 a``,
``mu_r = mu_g = 1 - c^(b/2)``; ``A, A_w`` zero, ``B^*, B_w`` uniform in ``+-0.01``; ``d_i = -6 + 5 (i/(C-1))^(0.7 +
1.3 a)``; ``u_i = a (1 - i/(C-1)) + 0.1 ((i + 1) mod 3 - 1)``; GroupNorm weight one, bias zero, eps ``64e-5``.
Deviation: ``W_r, W_k, W_v, W_g, W_o`` keep PyTorch's ``Linear`` init (the authors set them at the model level).

``bidirectional=True`` is the bidirectional WKV of Vision-RWKV-6 as LION runs it (one CUDA kernel: a backward loop,
then a forward loop, summed): with the same ``r, k, v, w, u`` (the token shift still reads ``x_{t-1}``)::

    S^b_t = diag(w_t) S^b_{t+1} + k_t^T v_t,  S^b_{L+1} = 0                     the later tokens, read backwards
    o_t   = r_t S_{t-1} + r_t S^b_{t+1} + (r_t * u * k_t) . v_t                  the current token once, by the bonus

The backward term is one ``chunk_gla(reverse=True)`` over ``k, v, log w`` moved one step earlier (a zero step at
the end), so that its state after step ``t`` is ``S^b_{t+1}``. A bidirectional mixer reads the whole sequence: it
takes no state, returns None for it and has no ``step``.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..scan import chunk_gla, chunk_gla_step
from .base import Mixer
from .checks import check_mixer_state, check_positive_int
from .registry import register_mixer


def wkv6(
    r: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_w: torch.Tensor,
    bonus: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    bidirectional: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """RWKV-6's WKV readout ``o_t = r_t S_{t-1} + (r_t * u * k_t) . v_t`` through ``chunk_gla`` (module docstring).

    Args:
        r, k, log_w: ``[B, L, H, K]`` (``log_w = log w_t <= 0``); v: ``[B, L, H, V]``; bonus ``u``: ``[H, K]``.
        initial_state: ``S_0 [B, H, K, V]`` (zeros when None).
        bidirectional: add ``r_t S^b_{t+1}``, the later tokens read backwards (no initial state then).

    Returns:
        ``o [B, L, H, V]`` and the state after step ``L`` (``[B, H, K, V]`` float32; None when bidirectional).
    """
    if tuple(bonus.shape) != tuple(r.shape[-2:]):
        raise ValueError(f"bonus must be [H, K] = {list(r.shape[-2:])}, got shape {tuple(bonus.shape)}")
    if bidirectional and initial_state is not None:
        raise ValueError("the bidirectional WKV reads whole sequences and takes no initial_state")
    zero = torch.zeros_like(r[:, :1])
    o, final_state = chunk_gla(
        torch.cat([r, zero], 1),
        torch.cat([zero, k], 1),
        torch.cat([torch.zeros_like(v[:, :1]), v], 1),
        torch.cat([torch.zeros_like(log_w[:, :1]), log_w], 1),
        scale=1.0,
        initial_state=initial_state,
        output_final_state=not bidirectional,
    )
    o = o[:, :-1] + (r * bonus * k).sum(-1, keepdim=True) * v
    if bidirectional:
        later = (torch.cat([t[:, 1:], torch.zeros_like(t[:, :1])], 1) for t in (k, v, log_w))
        o = o + chunk_gla(r, *later, scale=1.0, reverse=True)[0]
    return o, final_state


class RWKV6State(NamedTuple):
    """``recurrent [B, H, K, V]`` float32 (``S``), and ``shift [B, C]``: the last input, for the token shift."""

    recurrent: torch.Tensor
    shift: torch.Tensor


@register_mixer("rwkv6")
class RWKV6(Mixer):
    """RWKV-6 time mixing: token shift with ddlerp, data-dependent per-key decay, bonus ``u``, GroupNorm, silu gate.

    Args:
        d_model: channels ``C``; a multiple of ``head_dim``.
        head_dim: ``K = V`` per head.
        layer_idx, num_layers: position of the layer in the stack, used only by the initialisation.
        mix_low_rank_dim, decay_low_rank_dim: ranks of the ddlerp and decay LoRAs (32 and 64).
        norm_eps: epsilon of the GroupNorm.
        bidirectional: add the backward WKV over the later tokens (LION; module docstring).

    Parameters, with ``R = mix_low_rank_dim``, ``R_w = decay_low_rank_dim``::

        5 C^2 + (10 R + 2 R_w + 10) C

    for ``W_r, W_k, W_v, W_g, W_o``; ``A [C, 5R]`` and ``B [5, R, C]``; ``A_w, B_w``; ``mu_x, mu_w, mu_k, mu_v,
    mu_r, mu_g``; ``d``; ``u``; GroupNorm weight and bias.
    """

    def __init__(
        self,
        d_model: int,
        head_dim: int = 64,
        layer_idx: int = 0,
        num_layers: int = 2,
        mix_low_rank_dim: int = 32,
        decay_low_rank_dim: int = 64,
        norm_eps: float = 64e-5,
        bidirectional: bool = False,
    ) -> None:
        super().__init__(d_model)
        self.head_dim = check_positive_int("head_dim", head_dim)
        if d_model % head_dim:
            raise ValueError(f"d_model = {d_model} must be a multiple of head_dim = {head_dim}")
        check_positive_int("num_layers", num_layers)
        if not isinstance(layer_idx, int) or not 0 <= layer_idx < num_layers:
            raise ValueError(f"layer_idx must be an int in [0, num_layers = {num_layers}), got {layer_idx!r}")
        rank = check_positive_int("mix_low_rank_dim", mix_low_rank_dim)
        decay_rank = check_positive_int("decay_low_rank_dim", decay_low_rank_dim)
        self.num_heads = d_model // head_dim
        self.norm_eps = norm_eps
        self.bidirectional = bidirectional
        c = d_model
        ratio_0_to_1 = layer_idx / max(num_layers - 1, 1)
        ratio_1_to_0 = 1.0 - layer_idx / num_layers
        ddd = torch.arange(c, dtype=torch.float32) / c
        self.mu_x = nn.Parameter(1 - ddd**ratio_1_to_0)
        self.mu = nn.Parameter(
            torch.stack(
                [
                    1 - ddd**ratio_1_to_0,
                    1 - ddd**ratio_1_to_0,
                    1 - (ddd**ratio_1_to_0 + 0.3 * ratio_0_to_1),
                    1 - ddd ** (0.5 * ratio_1_to_0),
                    1 - ddd ** (0.5 * ratio_1_to_0),
                ]
            )
        )
        self.mix_a = nn.Parameter(torch.zeros(c, 5 * rank))
        self.mix_b = nn.Parameter(torch.empty(5, rank, c).uniform_(-0.01, 0.01))
        position = torch.arange(c, dtype=torch.float32) / max(c - 1, 1)
        self.decay = nn.Parameter(-6 + 5 * position ** (0.7 + 1.3 * ratio_0_to_1))
        self.decay_a = nn.Parameter(torch.zeros(c, decay_rank))
        self.decay_b = nn.Parameter(torch.empty(decay_rank, c).uniform_(-0.01, 0.01))
        bonus = ratio_0_to_1 * (1 - position) + 0.1 * ((torch.arange(c) + 1) % 3 - 1)
        self.bonus = nn.Parameter(bonus.view(self.num_heads, head_dim))
        self.r_proj = nn.Linear(c, c, bias=False)
        self.k_proj = nn.Linear(c, c, bias=False)
        self.v_proj = nn.Linear(c, c, bias=False)
        self.g_proj = nn.Linear(c, c, bias=False)
        self.o_proj = nn.Linear(c, c, bias=False)
        self.group_norm = nn.GroupNorm(self.num_heads, c, eps=norm_eps)

    def forward(self, x: torch.Tensor, state: RWKV6State | None = None) -> tuple[torch.Tensor, RWKV6State | None]:
        """``x [B, L, C]`` -> ``(y [B, L, C], RWKV6State after step L)``; the state is None when bidirectional."""
        self.check_input("x", x, 3)
        if self.bidirectional and state is not None:
            raise ValueError("a bidirectional rwkv6 mixer runs over whole sequences and takes no state")
        self._check_state(state, x.shape[0])
        previous = x.new_zeros(x.shape[0], 1, x.shape[2]) if state is None else state.shift.unsqueeze(1).to(x.dtype)
        r, k, v, log_w, g = self._mix(x, torch.cat([previous, x[:, :-1]], dim=1))
        initial = None if state is None else state.recurrent
        o, recurrent = wkv6(r, k, v, log_w, self.bonus, initial, self.bidirectional)
        y = self._output(o, g)
        return (y, None) if self.bidirectional else (y, RWKV6State(recurrent, x[:, -1]))

    def step(self, x_t: torch.Tensor, state: RWKV6State | None = None) -> tuple[torch.Tensor, RWKV6State]:
        """``x_t [B, C]`` -> ``(y_t [B, C]``, the next ``RWKV6State``); the update through ``chunk_gla_step``.
        Causal mixers only."""
        if self.bidirectional:
            raise ValueError("step() is not defined for a bidirectional rwkv6 mixer (it reads later tokens); run "
                             "forward() over the whole sequence")  # fmt: skip
        self.check_input("x_t", x_t, 2)
        self._check_state(state, x_t.shape[0])
        batch = x_t.shape[0]
        if state is None:
            shape = (batch, self.num_heads, self.head_dim, self.head_dim)
            state = RWKV6State(x_t.new_zeros(shape, dtype=torch.float32), torch.zeros_like(x_t))
        r, k, v, log_w, g = self._mix(x_t, state.shift.to(x_t.dtype))
        o = (r.to(state.recurrent.dtype).unsqueeze(-2) @ state.recurrent).squeeze(-2).to(r.dtype)
        o = o + (r * self.bonus * k).sum(-1, keepdim=True) * v
        _, recurrent = chunk_gla_step(r, k, v, log_w, state.recurrent, scale=1.0)
        return self._output(o, g), RWKV6State(recurrent, x_t)

    def _mix(self, x: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Token shift and ddlerp: ``r, k, v [..., H, K]``, ``log w = -exp(...) [..., H, K]``, ``g [..., C]``."""
        dx = previous - x
        lora = torch.tanh((x + dx * self.mu_x) @ self.mix_a).unflatten(-1, (5, -1))
        mixed = torch.einsum("...fr,frc->...fc", lora, self.mix_b)  # a broadcast matmul copies mix_b per token
        x_w, x_k, x_v, x_r, x_g = (x.unsqueeze(-2) + dx.unsqueeze(-2) * (self.mu + mixed)).unbind(-2)
        log_w = -torch.exp(self.decay + torch.tanh(x_w @ self.decay_a) @ self.decay_b)
        heads = (self.num_heads, self.head_dim)
        r, k, v = (
            proj(xs).unflatten(-1, heads) for proj, xs in ((self.r_proj, x_r), (self.k_proj, x_k), (self.v_proj, x_v))
        )
        return r, k, v, log_w.unflatten(-1, heads), self.g_proj(x_g)

    def _output(self, o: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``W_o(GroupNorm_H(o) * silu(g))`` for the WKV readout ``o [..., H, V]`` and the gate input ``g [..., C]``."""
        o = o.flatten(-2)
        norm = self.group_norm
        normed = F.group_norm(o.reshape(-1, self.d_model), self.num_heads, norm.weight, norm.bias, norm.eps)
        return self.o_proj(normed.view_as(o) * F.silu(g))

    def _check_state(self, state: RWKV6State | None, batch: int) -> None:
        recurrent = (batch, self.num_heads, self.head_dim, self.head_dim)
        check_mixer_state(state, RWKV6State, {"recurrent": recurrent, "shift": (batch, self.d_model)})
