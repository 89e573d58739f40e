"""SwiGLU feed-forward of Lina-Speech's blocks: ``y = W_3 (silu(W_1 x) * W_2 x)`` with hidden size ``4 d / 3``."""

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLU(nn.Module):
    """``x [..., d] -> y [..., d]`` through a gated hidden layer of ``int(4 d / 3)`` channels (no biases)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        hidden = 4 * d_model // 3
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
