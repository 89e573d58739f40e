"""The interface every sequence mixer implements: a parallel form over a whole sequence and a streaming step."""

from typing import Any

import torch
from torch import nn


class Mixer(nn.Module):
    """Maps ``[B, L, C]`` to ``[B, L, C]`` along time, carrying a recurrent state between calls.

    Subclasses implement ``forward`` (all steps at once) and ``step`` (one step); both take and return the
    state, whose layout each mixer documents. ``state=None`` starts from the mixer's zero state. Feeding a
    sequence through ``step`` one element at a time gives ``forward``'s output to float32 rounding, and so does
    ``forward`` over consecutive pieces of a sequence with the state handed on.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        if not isinstance(d_model, int) or isinstance(d_model, bool) or d_model < 1:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}")
        self.d_model = d_model

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """``x [B, L, C]`` -> ``(y [B, L, C], state after the last step)``."""
        raise NotImplementedError

    def step(self, x_t: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """``x_t [B, C]`` -> ``(y_t [B, C], the next state)``."""
        raise NotImplementedError

    def check_input(self, name: str, x: torch.Tensor, ndim: int) -> None:
        """Raise ``TypeError``/``ValueError`` unless ``x`` is a floating tensor of ``ndim`` dims ending in ``C``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a real floating tensor, got dtype {x.dtype}")
        layout = "[B, L, C]" if ndim == 3 else "[B, C]"
        if x.ndim != ndim or x.shape[-1] != self.d_model:
            raise ValueError(f"{name} must be {layout} with C = d_model = {self.d_model}, got shape {tuple(x.shape)}")
