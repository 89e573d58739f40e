"""The short causal depthwise convolution that precedes the scan in GLA (``use_short_conv``) and Mamba-2 blocks.

Per channel ``d`` with kernel ``w_d [W]`` (and bias ``b_d``), over the input and the ``W - 1`` inputs before it::

    y_t[d] = act(b_d + sum_{j=0}^{W-1} w_d[j] x_{t-W+1+j}[d])

The inputs before the first one come from a cache ``[B, D, W-1]`` (zeros when None), and the last ``W - 1``
inputs become the next cache, so pieces of a sequence and single steps give the result of the whole sequence.
Computed by ``lrnn.kernels.causal_conv1d`` (fused with the SiLU).
"""

import torch
from torch import nn

from ...kernels.causal_conv1d import causal_conv1d


class ShortConv(nn.Module):
    """Causal depthwise conv1d with SiLU over ``D`` channels, kernel ``W``; ``D * W`` weights (``+ D`` with bias).

    Initialised as ``torch.nn.Conv1d(D, D, W, groups=D)`` is (uniform in ``+-1/sqrt(W)``).
    """

    def __init__(self, channels: int, kernel_size: int = 4, bias: bool = False) -> None:
        super().__init__()
        if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 1:
            raise ValueError(f"conv kernel_size must be a positive int, got {kernel_size!r}")
        conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=bias)
        self.weight = conv.weight
        self.bias = conv.bias
        self.channels = channels
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, L, D]``, ``cache [B, D, W-1]`` or None -> ``(silu(conv(x)) [B, L, D], next cache [B, D, W-1])``."""
        if cache is None:
            cache = x.new_zeros(x.shape[0], self.channels, self.kernel_size - 1)
        return causal_conv1d(x, self.weight[:, 0], self.bias, "silu", cache.to(x.dtype), output_final_state=True)
