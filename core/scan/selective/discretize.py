"""The pieces of Mamba-1's discretisation shared by every face of ``selective_scan``.

Zero-order hold on ``A`` and Euler on ``B``: ``a_t = exp(dt_t A)``, ``x_t = dt_t B_t u_t``, with
``dt = softplus(dt + dt_bias)`` when asked. ``B`` and ``C`` come in ``G`` groups, each shared by ``D / G``
consecutive channels.
"""

import torch
import torch.nn.functional as F


def effective_dt(dt: torch.Tensor, dt_bias: torch.Tensor | None, dt_softplus: bool, dtype: torch.dtype) -> torch.Tensor:
    """``dt [..., D]`` plus ``dt_bias [D]``, through softplus if asked, in ``dtype``."""
    dt = dt.to(dtype)
    if dt_bias is not None:
        dt = dt + dt_bias.to(dtype)
    return F.softplus(dt) if dt_softplus else dt


def per_channel(grouped: torch.Tensor, channels: int) -> torch.Tensor:
    """``[..., G, N]`` -> ``[..., D, N]``: group ``g`` serves channels ``g * D/G`` to ``(g + 1) * D/G - 1``."""
    return grouped.repeat_interleave(channels // grouped.shape[-2], dim=-2)


def readout(
    h: torch.Tensor, C: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None
) -> torch.Tensor:
    """``y = C · h + D u``, gated by ``silu(z)`` if given. ``h [..., D, N]``, ``C [..., G, N]``, ``u, z [..., D]``."""
    y = (per_channel(C.to(h.dtype), u.shape[-1]) * h).sum(-1)
    if D is not None:
        y = y + D.to(h.dtype) * u.to(h.dtype)
    if z is not None:
        y = y * F.silu(z.to(h.dtype))
    return y
