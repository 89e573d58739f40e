"""The Triton face of ``linear_scan``: one pass over memory forward, one pass backward.

Each program owns ``BD`` channels of one sequence and walks time in tiles of ``BT`` steps. A tile is loaded
once, scanned in registers with ``tl.associative_scan`` under ``(a1, x1)∘(a2, x2) = (a1 a2, a2 x1 + x2)``,
joined to the carried state and written once, so the forward moves the minimum: read ``a`` and ``x``, write
``h``. The backward reads ``a`` (shifted one step), the saved ``h`` (shifted the other way) and ``dh``, and
writes ``da`` and ``dx``: five streams, also the minimum. State and arithmetic are float32 (float64 for
float64 inputs). Complex inputs travel as interleaved (real, imag) pairs.
All tensors are canonical, contiguous ``[B, T, D]``.
"""

import torch
import triton
import triton.language as tl

from ..backend import accumulation_dtype


@triton.jit
def _combine(a1, x1, a2, x2):
    return a1 * a2, a2 * x1 + x2


@triton.jit
def _combine_complex(ar1, ai1, xr1, xi1, ar2, ai2, xr2, xi2):
    return (
        ar2 * ar1 - ai2 * ai1,
        ar2 * ai1 + ai2 * ar1,
        ar2 * xr1 - ai2 * xi1 + xr2,
        ar2 * xi1 + ai2 * xr1 + xi2,
    )


@triton.jit
def _row(tile, rows, index):
    """Row ``index`` of a ``[BT, BD]`` tile as a ``[BD]`` vector."""
    return tl.sum(tl.where(rows[:, None] == index, tile, 0.0), axis=0)


@triton.jit(do_not_specialize=["T"])
def _linear_scan_fwd_kernel(
    a_ptr, x_ptr, h_ptr, h0_ptr, ht_ptr, T, D,
    BT: tl.constexpr, BD: tl.constexpr, REVERSE: tl.constexpr, HAS_H0: tl.constexpr,
    STORE_HT: tl.constexpr, IS_COMPLEX: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    W: tl.constexpr = 2 if IS_COMPLEX else 1
    LAST: tl.constexpr = 0 if REVERSE else BT - 1
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BD + tl.arange(0, BD)
    mask_d = offs_d < D
    rows = tl.arange(0, BT)
    base = pid_b * T * D * W
    state = (pid_b * D + offs_d) * W
    carry_r = tl.zeros([BD], dtype=ACC)
    carry_i = tl.zeros([BD], dtype=ACC)
    if HAS_H0:
        carry_r = tl.load(h0_ptr + state, mask=mask_d, other=0.0).to(ACC)
        if IS_COMPLEX:
            carry_i = tl.load(h0_ptr + state + 1, mask=mask_d, other=0.0).to(ACC)
    n_tiles = tl.cdiv(T, BT)
    for i in range(0, n_tiles):
        if REVERSE:
            tile = n_tiles - 1 - i
        else:
            tile = i
        offs_t = tile * BT + rows
        mask = (offs_t < T)[:, None] & mask_d[None, :]
        offs = base + (offs_t.to(tl.int64)[:, None] * D + offs_d[None, :]) * W
        if IS_COMPLEX:
            ar = tl.load(a_ptr + offs, mask=mask, other=1.0).to(ACC)
            ai = tl.load(a_ptr + offs + 1, mask=mask, other=0.0).to(ACC)
            xr = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
            xi = tl.load(x_ptr + offs + 1, mask=mask, other=0.0).to(ACC)
            ar, ai, xr, xi = tl.associative_scan((ar, ai, xr, xi), 0, _combine_complex, reverse=REVERSE)
            hr = xr + ar * carry_r[None, :] - ai * carry_i[None, :]
            hi = xi + ar * carry_i[None, :] + ai * carry_r[None, :]
            tl.store(h_ptr + offs, hr.to(h_ptr.dtype.element_ty), mask=mask)
            tl.store(h_ptr + offs + 1, hi.to(h_ptr.dtype.element_ty), mask=mask)
            carry_r = _row(hr, rows, LAST)
            carry_i = _row(hi, rows, LAST)
        else:
            a = tl.load(a_ptr + offs, mask=mask, other=1.0).to(ACC)
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
            a, x = tl.associative_scan((a, x), 0, _combine, reverse=REVERSE)
            h = x + a * carry_r[None, :]
            tl.store(h_ptr + offs, h.to(h_ptr.dtype.element_ty), mask=mask)
            carry_r = _row(h, rows, LAST)
    if STORE_HT:
        tl.store(ht_ptr + state, carry_r, mask=mask_d)
        if IS_COMPLEX:
            tl.store(ht_ptr + state + 1, carry_i, mask=mask_d)


@triton.jit(do_not_specialize=["T"])
def _linear_scan_bwd_kernel(
    a_ptr, h_ptr, h0_ptr, dh_ptr, dht_ptr, da_ptr, dx_ptr, dh0_ptr, T, D,
    BT: tl.constexpr, BD: tl.constexpr, REVERSE: tl.constexpr, HAS_H0: tl.constexpr,
    HAS_DHT: tl.constexpr, IS_COMPLEX: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    # The total gradient g_t = dh_t + conj(a_{t+s}) g_{t+s} runs against the forward direction s = ±1.
    W: tl.constexpr = 2 if IS_COMPLEX else 1
    S: tl.constexpr = -1 if REVERSE else 1
    EDGE: tl.constexpr = BT - 1 if REVERSE else 0
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BD + tl.arange(0, BD)
    mask_d = offs_d < D
    rows = tl.arange(0, BT)
    base = pid_b * T * D * W
    state = (pid_b * D + offs_d) * W
    carry_r = tl.zeros([BD], dtype=ACC)
    carry_i = tl.zeros([BD], dtype=ACC)
    if HAS_DHT:
        carry_r = tl.load(dht_ptr + state, mask=mask_d, other=0.0).to(ACC)
        if IS_COMPLEX:
            carry_i = tl.load(dht_ptr + state + 1, mask=mask_d, other=0.0).to(ACC)
    h0_r = tl.zeros([BD], dtype=ACC)
    h0_i = tl.zeros([BD], dtype=ACC)
    if HAS_H0:
        h0_r = tl.load(h0_ptr + state, mask=mask_d, other=0.0).to(ACC)
        if IS_COMPLEX:
            h0_i = tl.load(h0_ptr + state + 1, mask=mask_d, other=0.0).to(ACC)
    n_tiles = tl.cdiv(T, BT)
    for i in range(0, n_tiles):
        if REVERSE:
            tile = i
        else:
            tile = n_tiles - 1 - i
        offs_t = tile * BT + rows
        valid_t = offs_t < T
        mask = valid_t[:, None] & mask_d[None, :]
        t_next = offs_t + S
        t_prev = offs_t - S
        mask_next = mask & ((t_next >= 0) & (t_next < T))[:, None]
        mask_prev = mask & ((t_prev >= 0) & (t_prev < T))[:, None]
        at_start = ((t_prev < 0) | (t_prev >= T))[:, None]
        offs = base + (offs_t.to(tl.int64)[:, None] * D + offs_d[None, :]) * W
        offs_next = offs + S * D * W
        offs_prev = offs - S * D * W
        if IS_COMPLEX:
            cr = tl.load(a_ptr + offs_next, mask=mask_next, other=1.0).to(ACC)
            ci = -tl.load(a_ptr + offs_next + 1, mask=mask_next, other=0.0).to(ACC)
            gr = tl.load(dh_ptr + offs, mask=mask, other=0.0).to(ACC)
            gi = tl.load(dh_ptr + offs + 1, mask=mask, other=0.0).to(ACC)
            cr, ci, gr, gi = tl.associative_scan((cr, ci, gr, gi), 0, _combine_complex, reverse=not REVERSE)
            gr, gi = (
                gr + cr * carry_r[None, :] - ci * carry_i[None, :],
                gi + cr * carry_i[None, :] + ci * carry_r[None, :],
            )
            pr = tl.load(h_ptr + offs_prev, mask=mask_prev, other=0.0).to(ACC)
            pi = tl.load(h_ptr + offs_prev + 1, mask=mask_prev, other=0.0).to(ACC)
            pr = tl.where(at_start, h0_r[None, :], pr)
            pi = tl.where(at_start, h0_i[None, :], pi)
            tl.store(dx_ptr + offs, gr.to(dx_ptr.dtype.element_ty), mask=mask)
            tl.store(dx_ptr + offs + 1, gi.to(dx_ptr.dtype.element_ty), mask=mask)
            tl.store(da_ptr + offs, (gr * pr + gi * pi).to(da_ptr.dtype.element_ty), mask=mask)
            tl.store(da_ptr + offs + 1, (gi * pr - gr * pi).to(da_ptr.dtype.element_ty), mask=mask)
            carry_r = _row(gr, rows, EDGE)
            carry_i = _row(gi, rows, EDGE)
        else:
            c = tl.load(a_ptr + offs_next, mask=mask_next, other=1.0).to(ACC)
            g = tl.load(dh_ptr + offs, mask=mask, other=0.0).to(ACC)
            c, g = tl.associative_scan((c, g), 0, _combine, reverse=not REVERSE)
            g = g + c * carry_r[None, :]
            prev = tl.load(h_ptr + offs_prev, mask=mask_prev, other=0.0).to(ACC)
            prev = tl.where(at_start, h0_r[None, :], prev)
            tl.store(dx_ptr + offs, g.to(dx_ptr.dtype.element_ty), mask=mask)
            tl.store(da_ptr + offs, (g * prev).to(da_ptr.dtype.element_ty), mask=mask)
            carry_r = _row(g, rows, EDGE)
    first = base + ((T - 1 if REVERSE else 0) * D + offs_d) * W
    fr = tl.load(a_ptr + first, mask=mask_d, other=0.0).to(ACC)
    if IS_COMPLEX:
        fi = tl.load(a_ptr + first + 1, mask=mask_d, other=0.0).to(ACC)
        tl.store(dh0_ptr + state, fr * carry_r + fi * carry_i, mask=mask_d)
        tl.store(dh0_ptr + state + 1, fr * carry_i - fi * carry_r, mask=mask_d)
    else:
        tl.store(dh0_ptr + state, fr * carry_r, mask=mask_d)


def _as_scalars(t: torch.Tensor | None) -> torch.Tensor | None:
    """A real view of ``t``: complex tensors become interleaved (real, imag) pairs."""
    return torch.view_as_real(t) if t is not None and t.is_complex() else t


def launch_config(batch: int, width: int, dtype: torch.dtype) -> dict:
    """Tile sizes and warps for ``[batch, *, width]``; chosen from the H100 sweep in benchmarks/NOTES.md."""
    return {"BT": 32, "BD": min(64, triton.next_power_of_2(width)), "num_warps": 4}


def linear_scan_triton_fwd(
    a: torch.Tensor, x: torch.Tensor, initial_state: torch.Tensor | None, reverse: bool, config: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward launch. ``initial_state`` is None or ``[B, D]`` in the accumulation dtype.

    Returns ``h [B, T, D]`` in ``x``'s dtype and the final state ``[B, D]`` in the accumulation dtype.
    """
    batch, steps, width = x.shape
    cfg = config or launch_config(batch, width, x.dtype)
    acc = accumulation_dtype(x.dtype)
    h = torch.empty_like(x)
    final_state = torch.empty(batch, width, dtype=acc, device=x.device)
    grid = (triton.cdiv(width, cfg["BD"]), batch)
    _linear_scan_fwd_kernel[grid](
        _as_scalars(a), _as_scalars(x), _as_scalars(h), _as_scalars(initial_state), _as_scalars(final_state),
        steps, width, BT=cfg["BT"], BD=cfg["BD"], REVERSE=reverse, HAS_H0=initial_state is not None,
        STORE_HT=True, IS_COMPLEX=x.is_complex(), ACC=_TRITON_DTYPE[acc], num_warps=cfg["num_warps"],
    )  # fmt: skip
    return h, final_state


def linear_scan_triton_bwd(
    a: torch.Tensor,
    h: torch.Tensor,
    initial_state: torch.Tensor | None,
    grad_h: torch.Tensor,
    grad_final_state: torch.Tensor | None,
    reverse: bool,
    config: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward launch. States are None or ``[B, D]`` in the accumulation dtype.

    Returns ``(da, dx, d_initial_state)``, the last in the accumulation dtype (the gradient for a zero initial
    state when there was none).
    """
    batch, steps, width = h.shape
    cfg = config or launch_config(batch, width, h.dtype)
    acc = accumulation_dtype(h.dtype)
    da = torch.empty_like(a)
    dx = torch.empty_like(h)
    d_initial_state = torch.empty(batch, width, dtype=acc, device=h.device)
    grid = (triton.cdiv(width, cfg["BD"]), batch)
    _linear_scan_bwd_kernel[grid](
        _as_scalars(a), _as_scalars(h), _as_scalars(initial_state), _as_scalars(grad_h),
        _as_scalars(grad_final_state), _as_scalars(da), _as_scalars(dx), _as_scalars(d_initial_state),
        steps, width, BT=cfg["BT"], BD=cfg["BD"], REVERSE=reverse, HAS_H0=initial_state is not None,
        HAS_DHT=grad_final_state is not None, IS_COMPLEX=h.is_complex(), ACC=_TRITON_DTYPE[acc],
        num_warps=cfg["num_warps"],
    )  # fmt: skip
    return da, dx, d_initial_state


_TRITON_DTYPE = {
    torch.float32: tl.float32,
    torch.float64: tl.float64,
    torch.complex64: tl.float32,
    torch.complex128: tl.float64,
}
