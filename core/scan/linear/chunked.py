"""The PyTorch face of ``linear_scan``: chunked and vectorised over time, for CPU training and as a fallback.

Within chunks of ``CHUNK`` steps the scan is a Hillis-Steele doubling scan (``log2(CHUNK)`` whole-tensor
steps, no division, so gates of exactly 0 are fine); the chunk-end states are themselves a linear scan of the
chunk totals, solved the same way recursively, and are then folded back into every step.
All tensors here are canonical ``[B, T, D]``.
"""

import torch

from ..backend import accumulation_dtype

CHUNK = 64


def _doubling_scan(a: torch.Tensor, x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan of the pairs ``(a, x)`` along ``dim`` under ``(a1, x1)∘(a2, x2) = (a1 a2, a2 x1 + x2)``.

    Returns the running products of ``a`` and the scan of ``x`` from a zero state.
    """
    n, step = a.shape[dim], 1
    while step < n:
        a_head, x_head = a.narrow(dim, 0, step), x.narrow(dim, 0, step)
        a_prev, x_prev = a.narrow(dim, 0, n - step), x.narrow(dim, 0, n - step)
        a_cur, x_cur = a.narrow(dim, step, n - step), x.narrow(dim, step, n - step)
        x = torch.cat([x_head, a_cur * x_prev + x_cur], dim)
        a = torch.cat([a_head, a_cur * a_prev], dim)
        step *= 2
    return a, x


def _scan_from_zero(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t h_{t-1} + x_t`` from ``h_{-1} = 0`` over dim 1 of ``[B, T, D]``."""
    batch, steps, width = x.shape
    if steps <= CHUNK:
        return _doubling_scan(a, x, 1)[1]
    n_chunks = -(-steps // CHUNK)
    pad = n_chunks * CHUNK - steps
    if pad:
        a = torch.cat([a, a.new_ones(batch, pad, width)], 1)
        x = torch.cat([x, x.new_zeros(batch, pad, width)], 1)
    a_run, x_run = _doubling_scan(a.view(batch, n_chunks, CHUNK, width), x.view(batch, n_chunks, CHUNK, width), 2)
    chunk_ends = _scan_from_zero(a_run[:, :, -1], x_run[:, :, -1])
    carry_in = torch.cat([chunk_ends.new_zeros(batch, 1, width), chunk_ends[:, :-1]], 1)
    h = x_run + a_run * carry_in.unsqueeze(2)
    return h.reshape(batch, n_chunks * CHUNK, width)[:, :steps]


def linear_scan_chunked_fwd(
    a: torch.Tensor, x: torch.Tensor, initial_state: torch.Tensor | None, reverse: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward scan. ``a, x [B, T, D]``, ``initial_state [B, D]`` or None.

    Returns ``h [B, T, D]`` in ``x``'s dtype and the final state ``[B, D]`` in the accumulation dtype.
    """
    acc = accumulation_dtype(x.dtype)
    a_acc, x_acc = a.to(acc), x.to(acc, copy=True)
    if reverse:
        a_acc, x_acc = a_acc.flip(1), x_acc.flip(1)
    if initial_state is not None:
        x_acc = torch.cat([x_acc[:, :1] + a_acc[:, :1] * initial_state.to(acc).unsqueeze(1), x_acc[:, 1:]], 1)
    h = _scan_from_zero(a_acc, x_acc)
    final_state = h[:, -1].clone()
    if reverse:
        h = h.flip(1)
    return h.to(x.dtype), final_state


def linear_scan_chunked_bwd(
    a: torch.Tensor,
    h: torch.Tensor,
    initial_state: torch.Tensor | None,
    grad_h: torch.Tensor,
    grad_final_state: torch.Tensor | None,
    reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(da, dx, d_initial_state)`` of the forward scan that produced ``h``.

    The total gradient reaching ``h_t`` is itself a linear scan run the other way,
    ``g_t = dh_t + conj(a_{t+1}) g_{t+1}`` (``g`` enters at the end with the final state's gradient); then
    ``dx_t = g_t``, ``da_t = g_t conj(h_{t-1})`` and ``d_initial_state = conj(a_0) g_0`` (indices mirrored when
    ``reverse``). ``d_initial_state`` is zeros when there was no initial state.
    """
    acc = accumulation_dtype(h.dtype)
    a_acc, h_acc, g_in = a.to(acc).conj(), h.to(acc), grad_h.to(acc)
    if reverse:
        a_acc, h_acc, g_in = a_acc.flip(1), h_acc.flip(1), g_in.flip(1)
    if grad_final_state is not None:
        g_in = torch.cat([g_in[:, :-1], g_in[:, -1:] + grad_final_state.to(acc).unsqueeze(1)], 1)
    coefficient = torch.cat([a_acc[:, 1:], a_acc.new_ones(a_acc[:, :1].shape)], 1)
    g = _scan_from_zero(coefficient.flip(1), g_in.flip(1)).flip(1)
    h0 = h_acc.new_zeros(h_acc[:, 0].shape) if initial_state is None else initial_state.to(acc)
    h_prev = torch.cat([h0.unsqueeze(1), h_acc[:, :-1]], 1)
    da = g * h_prev.conj()
    grad_initial_state = a_acc[:, 0] * g[:, 0]
    if reverse:
        da, g = da.flip(1), g.flip(1)
    return da.to(a.dtype), g.to(h.dtype), grad_initial_state
