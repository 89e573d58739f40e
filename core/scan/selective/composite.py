"""The PyTorch face of ``selective_scan``: discretise to ``[B, T, D, N]`` gates and inputs and run one
``linear_scan`` over ``D * N`` channels.

Exact, differentiable (``linear_scan``'s own backward plus autograd for the rest) and simple; it materialises
``B * T * D * N`` elements twice, which is fine for CPU-sized models. A fused Triton kernel that keeps the
state in registers replaces it on CUDA once it lands.
"""

import torch

from ..backend import accumulation_dtype
from ..linear import linear_scan
from .discretize import effective_dt, per_channel, readout


def selective_scan_composite(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, reverse
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``y [B, T, D]`` in ``u``'s dtype and the final state ``[B, D, N]`` in the accumulation dtype."""
    acc = accumulation_dtype(u.dtype)
    batch, steps, channels = u.shape
    state_size = A.shape[-1]
    delta = effective_dt(dt, dt_bias, dt_softplus, acc)
    decay = torch.exp(delta[..., None] * A.to(acc))
    drive = (delta * u.to(acc))[..., None] * per_channel(B.to(acc), channels)
    h0 = None if initial_state is None else initial_state.reshape(batch, channels * state_size)
    h, final_state = linear_scan(
        decay.reshape(batch, steps, -1), drive.reshape(batch, steps, -1), h0, output_final_state=True, reverse=reverse
    )
    y = readout(h.view(batch, steps, channels, state_size), C, u, D, z)
    return y.to(u.dtype), final_state.view(batch, channels, state_size)
