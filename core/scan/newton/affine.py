"""The linear recurrence inside every Newton step: ``h_t = J_t h_{t-1} + b_t`` with dense ``J_t [M, M]``.

It is a scan over affine maps ``(J, b)`` under the associative combine ``(J2, b2)∘(J1, b1) = (J2 J1, J2 b1 + b2)``
(apply 1, then 2). Two faces, both vectorised over time in plain PyTorch:

- ``"doubling"``: a Hillis-Steele scan, ``ceil(log2 T)`` whole-tensor steps, each one batched ``[M, M]``
  matrix product per time step. Work ``O(T M^3 log T)``, depth ``O(log T)``: few large launches, for GPUs.
- ``"chunked"``: chunks of ``C = ceil(sqrt T)`` steps. (1) every chunk's total map, the chunks side by side and
  the ``C`` steps in order (``O(T M^3)`` work); (2) the chunk-entry states, one chunk at a time from
  ``initial_state`` (``O(T/C M^2)``); (3) the states inside every chunk from its entry state, the chunks side by
  side (``O(T M^2)``). Work ``O(T M^3)``, ``3 sqrt T`` sequential steps: less work, for CPUs.

The sequential loop itself costs ``O(T M^2)`` over ``T`` steps; the parallel forms buy depth with ``M`` times the
work (``M log T`` times for ``"doubling"``).
"""

import math

import torch

SCANS = ("doubling", "chunked")


def _matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (a @ v.unsqueeze(-1)).squeeze(-1)


def _doubling(jac: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inclusive scan from a zero state over dim 1 of ``jac [B, T, M, M]``, ``b [B, T, M]``."""
    steps, step = b.shape[1], 1
    while step < steps:
        b = torch.cat([b[:, :step], _matvec(jac[:, step:], b[:, :-step]) + b[:, step:]], 1)
        if 2 * step < steps:
            jac = torch.cat([jac[:, :step], jac[:, step:] @ jac[:, :-step]], 1)
        step *= 2
    return b


def _chunked(jac: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor) -> torch.Tensor:
    """Chunks of ``ceil(sqrt T)`` steps: chunk totals, then entry states, then the states inside the chunks."""
    batch, steps, width = b.shape
    chunk = math.isqrt(steps - 1) + 1
    n_chunks = -(-steps // chunk)
    pad = n_chunks * chunk - steps
    if pad:
        eye = torch.eye(width, dtype=jac.dtype, device=jac.device).expand(batch, pad, width, width)
        jac, b = torch.cat([jac, eye], 1), torch.cat([b, b.new_zeros(batch, pad, width)], 1)
    jac, b = jac.view(batch, n_chunks, chunk, width, width), b.view(batch, n_chunks, chunk, width)
    total_jac, total_b = jac[:, :, 0], b[:, :, 0]
    for k in range(1, chunk):
        total_jac, total_b = jac[:, :, k] @ total_jac, _matvec(jac[:, :, k], total_b) + b[:, :, k]
    entries = [initial_state]
    for c in range(n_chunks - 1):
        entries.append(_matvec(total_jac[:, c], entries[-1]) + total_b[:, c])
    h, states = torch.stack(entries, 1), []
    for k in range(chunk):
        h = _matvec(jac[:, :, k], h) + b[:, :, k]
        states.append(h)
    return torch.stack(states, 2).reshape(batch, n_chunks * chunk, width)[:, :steps]


def affine_scan(
    jac: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None, scan: str = "doubling"
) -> torch.Tensor:
    """``h_t = J_t h_{t-1} + b_t`` for ``t = 0 .. T-1`` from ``h_{-1} = initial_state`` (zeros when None).

    Args:
        jac: ``[B, T, M, M]``; b: ``[B, T, M]``; initial_state: ``[B, M]``; scan: ``"doubling"`` or ``"chunked"``.

    Returns:
        ``h [B, T, M]``. Plain tensor operations, so autograd could differentiate it, but ``newton_scan`` never
        asks it to (its backward is another ``affine_scan``, see ``newton.py``).
    """
    if initial_state is None:
        initial_state = b.new_zeros(b.shape[0], b.shape[2])
    if scan == "chunked":
        return _chunked(jac, b, initial_state)
    b = torch.cat([b[:, :1] + _matvec(jac[:, 0], initial_state).unsqueeze(1), b[:, 1:]], 1)
    return _doubling(jac, b)
