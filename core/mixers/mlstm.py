"""mLSTM: the matrix-memory cell of xLSTM (Beck et al., NeurIPS 2024), sigmoid input gate, through ``chunk_gla``.

Per head ``h`` (``H`` heads, ``K = key_dim / H``, ``V = value_dim / H``), for the input ``x_t [C]``::

    q_t, k_t, v_t = W_q x_t, W_k x_t / sqrt(K), W_v x_t
    i_t = sigmoid(w_i . x_t + b_i),   log f_t = logsigmoid(w_f . x_t + b_f)               one scalar per head
    C_t = f_t C_{t-1} + i_t k_t^T v_t                                                     [K, V]
    n_t = f_t n_{t-1} + i_t k_t                                                           [K]
    h_t = sigmoid(W_o x_t + b_o) * (q_t C_t) / max(|q_t . n_t|, 1)                        [V]
    y_t = W_out concat_h h_t

This is the paper's cell (eqs. 19-27, ``C`` stored transposed) with one deviation: the paper's input gate is
``exp(.)``, kept finite by a running stabiliser ``m_t`` that rescales ``C``, ``n`` and the floor of the
denominator; ``chunk_gla`` has no such rescaling, so the input gate here is a sigmoid (as in the gated-linear-attention
reading of mLSTM that fla and the issue use), which is bounded and needs no stabiliser. The forget gate is the paper's
sigmoid form. The normaliser rides along as an extra value column: ``chunk_gla`` runs with ``k' = i_t k_t``,
``v' = [v_t, 1]`` and the scalar log gate ``log f_t [B, T, H]`` (scale 1), so its state ``[K, V + 1]`` is
``[C_t | n_t]`` and its output ``[V + 1]`` is ``[q_t C_t | q_t . n_t]``.

``reverse=True`` reads the sequence from its last step to its first (Vision-LSTM's ``ROWWISE_FROM_BOT_RIGHT``
block, the second of LION's xLSTM operator pair): one ``chunk_gla(reverse=True)``, no flipped copies, so ``y`` is
the causal mixer's output on the flipped sequence, flipped back. Its state is the one after the first step (read
last), handed to the piece before; ``step`` is the causal step, fed the steps last to first.

Initialisation as in the xLSTM code: gate weights zero, forget-gate biases ``linspace(3, 6)`` over the heads,
input-gate biases normal with std 0.1; the projections and the output gate as PyTorch initialises ``Linear``.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..scan import chunk_gla, chunk_gla_step
from .base import Mixer
from .checks import check_mixer_state, check_positive_int, expanded_dim
from .registry import register_mixer


class MLSTMState(NamedTuple):
    """``recurrent [B, H, K, V + 1]`` float32: the memory ``C_t`` (``[..., :V]``) and the normaliser ``n_t``
    (``[..., V]``)."""

    recurrent: torch.Tensor


@register_mixer("mlstm")
class MLSTM(Mixer):
    """xLSTM's mLSTM cell with scalar sigmoid input and forget gates per head, normaliser, sigmoid output gate.

    Args:
        d_model: channels ``C``.
        num_heads: heads ``H``.
        expand_k, expand_v: ``key_dim = C * expand_k``, ``value_dim = C * expand_v``.
        reverse: read the sequence from the last step to the first (module docstring).

    Parameters, with ``dk = key_dim``, ``dv = value_dim``: ``2 C dk + 3 C dv + dv + 2 H (C + 1)`` (``W_q, W_k``;
    ``W_v, W_o, W_out``; ``b_o``; input and forget gates).
    """

    def __init__(
        self, d_model: int, num_heads: int = 4, expand_k: float = 1.0, expand_v: float = 1.0, reverse: bool = False
    ) -> None:
        super().__init__(d_model)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.reverse = reverse
        self.key_dim = expanded_dim("expand_k", d_model, expand_k, num_heads)
        self.value_dim = expanded_dim("expand_v", d_model, expand_v, num_heads)
        self.head_k_dim = self.key_dim // num_heads
        self.head_v_dim = self.value_dim // num_heads
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.i_proj = nn.Linear(d_model, num_heads)
        self.f_proj = nn.Linear(d_model, num_heads)
        self.o_gate = nn.Linear(d_model, self.value_dim)
        self.out_proj = nn.Linear(self.value_dim, d_model, bias=False)
        for gate in (self.i_proj, self.f_proj):
            nn.init.zeros_(gate.weight)
        nn.init.normal_(self.i_proj.bias, std=0.1)
        with torch.no_grad():
            self.f_proj.bias.copy_(torch.linspace(3.0, 6.0, num_heads))

    def forward(self, x: torch.Tensor, state: MLSTMState | None = None) -> tuple[torch.Tensor, MLSTMState]:
        """``x [B, L, C]`` -> ``(y [B, L, C], MLSTMState after step L)`` (with ``reverse``: after step 1, read
        last); one ``chunk_gla`` over the ``L`` steps."""
        self.check_input("x", x, 3)
        self._check_state(state, x.shape[0])
        q, k, v, log_f = self._scan_inputs(x)
        initial = None if state is None else state.recurrent
        o, recurrent = chunk_gla(
            q, k, v, log_f, scale=1.0, initial_state=initial, output_final_state=True, reverse=self.reverse
        )
        return self._output(o, x), MLSTMState(recurrent)

    def step(self, x_t: torch.Tensor, state: MLSTMState | None = None) -> tuple[torch.Tensor, MLSTMState]:
        """``x_t [B, C]`` -> ``(y_t [B, C]``, the next ``MLSTMState``), through ``chunk_gla_step``."""
        self.check_input("x_t", x_t, 2)
        self._check_state(state, x_t.shape[0])
        q, k, v, log_f = self._scan_inputs(x_t)
        o, recurrent = chunk_gla_step(q, k, v, log_f, None if state is None else state.recurrent, scale=1.0)
        return self._output(o, x_t), MLSTMState(recurrent)

    def _scan_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``q, k' = i k / sqrt(K)`` ``[..., H, K]``, ``v' = [v, 1] [..., H, V + 1]``, ``log f [..., H]``."""
        heads = self.num_heads
        q = self.q_proj(x).unflatten(-1, (heads, -1))
        k = self.k_proj(x).unflatten(-1, (heads, -1)) * (
            self.head_k_dim**-0.5 * torch.sigmoid(self.i_proj(x))
        ).unsqueeze(-1)
        v = self.v_proj(x).unflatten(-1, (heads, -1))
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
        return q, k, v, F.logsigmoid(self.f_proj(x))

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``W_out(sigmoid(W_o x + b_o) * (q C) / max(|q . n|, 1))`` from ``o = [q C | q . n] [..., H, V + 1]``."""
        h = o[..., :-1] / o[..., -1:].abs().clamp(min=1.0)
        return self.out_proj(torch.sigmoid(self.o_gate(x)) * h.flatten(-2))

    def _check_state(self, state: MLSTMState | None, batch: int) -> None:
        recurrent = (batch, self.num_heads, self.head_k_dim, self.head_v_dim + 1)
        check_mixer_state(state, MLSTMState, {"recurrent": recurrent})
