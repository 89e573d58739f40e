"""The definition of ``selective_scan`` (Mamba-1): a plain sequential loop, the oracle for the other faces."""

import torch

from ..backend import accumulation_dtype
from .discretize import effective_dt, per_channel, readout


def selective_scan_reference(
    u, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, initial_state=None, output_final_state=False,
    reverse=False,
) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """``h_t = exp(dt_t A) * h_{t-1} + dt_t B_t u_t``, ``y_t = C_t · h_t + D u_t`` (times ``silu(z_t)``), one step
    at a time; shapes as in ``selective_scan``. Differentiable by autograd."""
    acc = accumulation_dtype(u.dtype)
    batch, steps, channels = u.shape
    delta = effective_dt(dt, dt_bias, dt_softplus, acc)
    h = u.new_zeros(batch, channels, A.shape[-1], dtype=acc) if initial_state is None else initial_state.to(acc)
    outputs = [None] * steps
    # unbind: one backward for all steps (indexing u[:, t] costs O(T) each, quadratic over a long sequence)
    deltas, us, Bs, Cs = delta.unbind(1), u.unbind(1), B.unbind(1), C.unbind(1)
    zs = [None] * steps if z is None else z.unbind(1)
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        decay = torch.exp(deltas[t][..., None] * A.to(acc))
        h = decay * h + (deltas[t] * us[t].to(acc))[..., None] * per_channel(Bs[t].to(acc), channels)
        outputs[t] = readout(h, Cs[t], us[t], D, zs[t])
    return torch.stack(outputs, 1).to(u.dtype), (h if output_final_state else None)
