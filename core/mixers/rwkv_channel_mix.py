"""RWKV channel mixing, the feed-forward half of an RWKV block, as Vision-RWKV-6 (and LION's RWKV operator) has it.

For ``x_t [C]`` and the previous token ``x_{t-1}`` (zero before the first; ``dx_t = x_{t-1} - x_t``)::

    x^k_t = mu_k x_t + (1 - mu_k) dx_t,     x^r_t = mu_r x_t + (1 - mu_r) dx_t
    y_t   = sigmoid(W_r x^r_t) * W_v relu(W_k x^k_t)^2                 W_k [h C, C], W_v [C, h C], W_r [C, C]

with the hidden rate ``h`` (4). Vision-RWKV mixes with the difference ``dx_t``, not with ``x_{t-1}`` itself as the
language models' channel mix does; this follows Vision-RWKV. Initialisation ("fancy") for layer ``l`` of ``n``:
``mu_k = mu_r = (i / C)^(1 - l / n)`` for channel ``i``; the linear maps keep PyTorch's default.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_positive_int


class RWKVChannelMix(nn.Module):
    """``[B, L, C] -> [B, L, C]``, each sequence shifted by one token on its own (no state across calls).

    Args:
        d_model: channels ``C``.
        hidden_rate: ``h``, the hidden width ``h C`` of ``W_k``.
        layer_idx, num_layers: this block's place in the model, for the initialisation.
    """

    def __init__(self, d_model: int, hidden_rate: float = 4.0, layer_idx: int = 0, num_layers: int = 2) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("num_layers", num_layers)
        if not isinstance(layer_idx, int) or not 0 <= layer_idx < num_layers:
            raise ValueError(f"layer_idx must be an int in [0, num_layers = {num_layers}), got {layer_idx!r}")
        if hidden_rate <= 0:
            raise ValueError(f"hidden_rate must be positive, got {hidden_rate}")
        hidden = round(hidden_rate * d_model)
        fraction = torch.arange(d_model, dtype=torch.float64) / d_model
        mix = (fraction ** (1.0 - layer_idx / num_layers)).float()
        self.mix_k = nn.Parameter(mix.clone())
        self.mix_r = nn.Parameter(mix.clone())
        self.key = nn.Linear(d_model, hidden, bias=False)
        self.value = nn.Linear(hidden, d_model, bias=False)
        self.receptance = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, L, C]`` -> ``y [B, L, C]``."""
        dx = F.pad(x, (0, 0, 1, -1)) - x
        x_k = x * self.mix_k + dx * (1 - self.mix_k)
        x_r = x * self.mix_r + dx * (1 - self.mix_r)
        return torch.sigmoid(self.receptance(x_r)) * self.value(torch.relu(self.key(x_k)).square())
