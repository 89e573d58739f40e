"""Parallel Gated Network (PGN, Jia et al., NeurIPS 2024): a gated unit over a window of history, no recurrence.

For a sequence ``x_1 .. x_T`` (``d_in`` features a step) and a window ``w``::

    H_t = HIE(x_{t-w} .. x_{t-1})               Historical Information Extraction: one linear map of the
                                                 previous w steps (zeros before the start); x_t is excluded
    G_t = sigmoid(W_g [x_t, H_t] + b_g)          gate
    Ĥ_t = tanh(W_h [x_t, H_t] + b_h)             candidate
    out_t = G_t ⊙ H_t + (1 - G_t) ⊙ Ĥ_t

With ``w = T - 1`` every step sees the whole history through one linear layer: an O(1) information path.
``groups`` independent PGNs run side by side (one per channel in TPGN), each with its own weights.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class GroupedLinear(nn.Module):
    """``groups`` separate linear maps side by side: ``x [..., groups, d_in] -> [..., groups, d_out]``.

    Initialised as PyTorch's ``Linear``/``Conv1d`` (weights and biases uniform in ``±1/sqrt(d_in)``), so a grouped
    ``Conv1d`` of the same fan-in is matched in distribution; an einsum is much faster than a grouped ``Conv1d``
    on the CPU.
    """

    def __init__(self, groups: int, d_in: int, d_out: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(groups, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...gi,gio->...go", x, self.weight) + self.bias


class PGN(nn.Module):
    """``x [B, T, groups, d_in] -> out [B, T, groups, d_model]``, ``groups`` PGNs with separate weights.

    Args:
        d_in: features per step and group.
        d_model: width of ``H`` and of the output.
        window: ``w``, steps of history the HIE layer reads (>= 1).
        groups: independent PGNs (use 1 for a single series).
    """

    def __init__(self, d_in: int, d_model: int, window: int, groups: int = 1) -> None:
        super().__init__()
        for name, value in (("d_in", d_in), ("d_model", d_model), ("window", window), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.d_in, self.d_model, self.window, self.groups = d_in, d_model, window, groups
        self.hie = GroupedLinear(groups, window * d_in, d_model)
        self.gate = GroupedLinear(groups, d_in + d_model, 2 * d_model)

    def history(self, x: torch.Tensor) -> torch.Tensor:
        """``H [B, T, groups, d_model]``: the HIE layer over the ``window`` steps before each step."""
        padded = F.pad(x, (0, 0, 0, 0, self.window, 0))[:, :-1]  # [B, w + T - 1, G, d_in], zeros first
        windows = padded.unfold(1, self.window, 1)  # [B, T, G, d_in, w]: position t holds inputs t-w .. t-1
        return self.hie(windows.flatten(-2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[2:] != (self.groups, self.d_in):
            raise ValueError(f"x must be [B, T, {self.groups}, {self.d_in}], got {list(x.shape)}")
        h = self.history(x)
        g, candidate = self.gate(torch.cat([x, h], dim=-1)).split(self.d_model, dim=-1)
        g = torch.sigmoid(g)
        return g * h + (1 - g) * torch.tanh(candidate)
