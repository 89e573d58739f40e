"""The Triton face of ``linear_scan``: one pass over memory forward, one pass backward.

Each program owns ``BD`` channels of one sequence and walks time in tiles of ``BT`` steps. A tile is loaded
once, scanned in registers with ``tl.associative_scan`` under ``(a1, x1)∘(a2, x2) = (a1 a2, a2 x1 + x2)``,
joined to the carried state and written once, so the forward moves the minimum: read ``a`` and ``x``, write
``h``. The backward reads ``a`` (shifted one step), the saved ``h`` (shifted the other way) and ``dh``, and
writes ``da`` and ``dx``: five streams, also the minimum. State and arithmetic are float32 (float64 for
float64 inputs). Complex inputs travel as interleaved (real, imag) pairs.
All tensors are canonical, contiguous ``[B, T, D]``. A launch config with ``"lookback": True`` hands the launch to
``lookback.py``, which splits time across programs (real inputs); one with ``"tma": True`` hands it to
``copy_engine.py``, which brings the tiles in through Hopper's copy engine (by default the bfloat16 forward on sm_90
and later; the backward only when a config asks).
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


@triton.jit
def _program_block(pid_d, pid_b, T, D, W: tl.constexpr, BT: tl.constexpr, BD: tl.constexpr):
    """Channel block ``pid_d`` of sequence ``pid_b``: channel offsets and mask, tile rows, the sequence's base
    offset and the state offsets."""
    pid_b = pid_b.to(tl.int64)
    offs_d = pid_d * BD + tl.arange(0, BD)
    mask_d = offs_d < D
    return offs_d, mask_d, tl.arange(0, BT), pid_b * T * D * W, (pid_b * D + offs_d) * W


@triton.jit
def _load_state(ptr, offs, mask, PRESENT: tl.constexpr, IS_COMPLEX: tl.constexpr, ACC: tl.constexpr, BD: tl.constexpr):
    """A ``[BD]`` state as (real, imaginary) parts; zeros when not ``PRESENT`` (and for the imaginary part of
    real inputs)."""
    real = tl.zeros([BD], dtype=ACC)
    imag = tl.zeros([BD], dtype=ACC)
    if PRESENT:
        real = tl.load(ptr + offs, mask=mask, other=0.0).to(ACC)
        if IS_COMPLEX:
            imag = tl.load(ptr + offs + 1, mask=mask, other=0.0).to(ACC)
    return real, imag


@triton.jit
def _tile(i, n_tiles, base, rows, offs_d, mask_d, T, D, W: tl.constexpr, BT: tl.constexpr, BACKWARD: tl.constexpr):
    """Time indices, element offsets and mask of the ``i``-th tile visited, its rows in the order visited: from the
    end, rows reversed, when ``BACKWARD``, so that every scan runs forward over the rows (Triton 3.6's
    ``associative_scan(reverse=True)`` costs 3.4 times the shuffles of a forward one on the H100's SASS).

    ``i = n_tiles`` gives a fully masked tile, so the loop can prefetch one tile ahead unconditionally.
    """
    if BACKWARD:
        offs_t = (n_tiles - 1 - i) * BT + (BT - 1 - rows)
    else:
        offs_t = i * BT + rows
    mask = ((offs_t >= 0) & (offs_t < T))[:, None] & mask_d[None, :]
    offs = base + (offs_t.to(tl.int64)[:, None] * D + offs_d[None, :]) * W
    return offs_t, offs, mask


@triton.jit(do_not_specialize=["T"])
def _linear_scan_fwd_kernel(
    a_ptr, x_ptr, h_ptr, h0_ptr, ht_ptr, T, D,
    BT: tl.constexpr, BD: tl.constexpr, REVERSE: tl.constexpr, HAS_H0: tl.constexpr,
    STORE_HT: tl.constexpr, IS_COMPLEX: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    # Loads of tile i + 1 are issued before tile i is scanned, so memory latency hides behind the scan.
    W: tl.constexpr = 2 if IS_COMPLEX else 1
    offs_d, mask_d, rows, base, state = _program_block(tl.program_id(0), tl.program_id(1), T, D, W, BT, BD)
    carry_r, carry_i = _load_state(h0_ptr, state, mask_d, HAS_H0, IS_COMPLEX, ACC, BD)
    n_tiles = tl.cdiv(T, BT)
    _, offs_n, mask_n = _tile(0, n_tiles, base, rows, offs_d, mask_d, T, D, W, BT, REVERSE)
    a_n = tl.load(a_ptr + offs_n, mask=mask_n, other=1.0)
    x_n = tl.load(x_ptr + offs_n, mask=mask_n, other=0.0)
    if IS_COMPLEX:
        ai_n = tl.load(a_ptr + offs_n + 1, mask=mask_n, other=0.0)
        xi_n = tl.load(x_ptr + offs_n + 1, mask=mask_n, other=0.0)
    for i in range(0, n_tiles):
        offs, mask, a, x = offs_n, mask_n, a_n.to(ACC), x_n.to(ACC)
        if IS_COMPLEX:
            ai, xi = ai_n.to(ACC), xi_n.to(ACC)
        _, offs_n, mask_n = _tile(i + 1, n_tiles, base, rows, offs_d, mask_d, T, D, W, BT, REVERSE)
        a_n = tl.load(a_ptr + offs_n, mask=mask_n, other=1.0)
        x_n = tl.load(x_ptr + offs_n, mask=mask_n, other=0.0)
        if IS_COMPLEX:
            ai_n = tl.load(a_ptr + offs_n + 1, mask=mask_n, other=0.0)
            xi_n = tl.load(x_ptr + offs_n + 1, mask=mask_n, other=0.0)
            a, ai, x, xi = tl.associative_scan((a, ai, x, xi), 0, _combine_complex)
            hr = x + a * carry_r[None, :] - ai * carry_i[None, :]
            hi = xi + a * carry_i[None, :] + ai * carry_r[None, :]
            tl.store(h_ptr + offs, hr.to(h_ptr.dtype.element_ty), mask=mask)
            tl.store(h_ptr + offs + 1, hi.to(h_ptr.dtype.element_ty), mask=mask)
            carry_r = _row(hr, rows, BT - 1)
            carry_i = _row(hi, rows, BT - 1)
        else:
            a, x = tl.associative_scan((a, x), 0, _combine)
            h = x + a * carry_r[None, :]
            tl.store(h_ptr + offs, h.to(h_ptr.dtype.element_ty), mask=mask)
            carry_r = _row(h, rows, BT - 1)
    if STORE_HT:
        tl.store(ht_ptr + state, carry_r, mask=mask_d)
        if IS_COMPLEX:
            tl.store(ht_ptr + state + 1, carry_i, mask=mask_d)


@triton.jit
def _bwd_tile_loads(a_ptr, h_ptr, dh_ptr, offs_t, offs, mask, T, D, W: tl.constexpr, S: tl.constexpr, PAD_A):
    """The backward's three streams for one tile: ``a`` one step ahead (``PAD_A`` past the end), ``dh``, and
    ``h`` one step behind (0 before the start; the caller puts the initial state there)."""
    t_next = offs_t + S
    t_prev = offs_t - S
    mask_next = mask & ((t_next >= 0) & (t_next < T))[:, None]
    mask_prev = mask & ((t_prev >= 0) & (t_prev < T))[:, None]
    coefficient = tl.load(a_ptr + offs + S * D * W, mask=mask_next, other=PAD_A)
    grad = tl.load(dh_ptr + offs, mask=mask, other=0.0)
    previous = tl.load(h_ptr + offs - S * D * W, mask=mask_prev, other=0.0)
    return coefficient, grad, previous


@triton.jit(do_not_specialize=["T"])
def _linear_scan_bwd_kernel(
    a_ptr, h_ptr, h0_ptr, dh_ptr, dht_ptr, da_ptr, dx_ptr, dh0_ptr, T, D,
    BT: tl.constexpr, BD: tl.constexpr, REVERSE: tl.constexpr, HAS_H0: tl.constexpr,
    HAS_DHT: tl.constexpr, IS_COMPLEX: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    # The total gradient g_t = dh_t + conj(a_{t+s}) g_{t+s} runs against the forward direction s = ±1; then
    # dx_t = g_t and da_t = g_t conj(h_{t-s}). Loads of the next tile are issued before this one is scanned.
    W: tl.constexpr = 2 if IS_COMPLEX else 1
    S: tl.constexpr = -1 if REVERSE else 1
    offs_d, mask_d, rows, base, state = _program_block(tl.program_id(0), tl.program_id(1), T, D, W, BT, BD)
    carry_r, carry_i = _load_state(dht_ptr, state, mask_d, HAS_DHT, IS_COMPLEX, ACC, BD)
    h0_r, h0_i = _load_state(h0_ptr, state, mask_d, HAS_H0, IS_COMPLEX, ACC, BD)
    n_tiles = tl.cdiv(T, BT)
    t_n, offs_n, mask_n = _tile(0, n_tiles, base, rows, offs_d, mask_d, T, D, W, BT, not REVERSE)
    c_n, g_n, p_n = _bwd_tile_loads(a_ptr, h_ptr, dh_ptr, t_n, offs_n, mask_n, T, D, W, S, 1.0)
    if IS_COMPLEX:
        ci_n, gi_n, pi_n = _bwd_tile_loads(a_ptr + 1, h_ptr + 1, dh_ptr + 1, t_n, offs_n, mask_n, T, D, W, S, 0.0)
    for i in range(0, n_tiles):
        offs_t, offs, mask, c, g, p = t_n, offs_n, mask_n, c_n.to(ACC), g_n.to(ACC), p_n.to(ACC)
        if IS_COMPLEX:
            ci, gi, pi = -ci_n.to(ACC), gi_n.to(ACC), pi_n.to(ACC)
        t_n, offs_n, mask_n = _tile(i + 1, n_tiles, base, rows, offs_d, mask_d, T, D, W, BT, not REVERSE)
        c_n, g_n, p_n = _bwd_tile_loads(a_ptr, h_ptr, dh_ptr, t_n, offs_n, mask_n, T, D, W, S, 1.0)
        at_start = ((offs_t - S < 0) | (offs_t - S >= T))[:, None]
        p = tl.where(at_start, h0_r[None, :], p)
        if IS_COMPLEX:
            ci_n, gi_n, pi_n = _bwd_tile_loads(a_ptr + 1, h_ptr + 1, dh_ptr + 1, t_n, offs_n, mask_n, T, D, W, S, 0.0)
            pi = tl.where(at_start, h0_i[None, :], pi)
            c, ci, g, gi = tl.associative_scan((c, ci, g, gi), 0, _combine_complex)
            g, gi = (
                g + c * carry_r[None, :] - ci * carry_i[None, :],
                gi + c * carry_i[None, :] + ci * carry_r[None, :],
            )
            tl.store(dx_ptr + offs, g.to(dx_ptr.dtype.element_ty), mask=mask)
            tl.store(dx_ptr + offs + 1, gi.to(dx_ptr.dtype.element_ty), mask=mask)
            tl.store(da_ptr + offs, (g * p + gi * pi).to(da_ptr.dtype.element_ty), mask=mask)
            tl.store(da_ptr + offs + 1, (gi * p - g * pi).to(da_ptr.dtype.element_ty), mask=mask)
            carry_r = _row(g, rows, BT - 1)
            carry_i = _row(gi, rows, BT - 1)
        else:
            c, g = tl.associative_scan((c, g), 0, _combine)
            g = g + c * carry_r[None, :]
            tl.store(dx_ptr + offs, g.to(dx_ptr.dtype.element_ty), mask=mask)
            tl.store(da_ptr + offs, (g * p).to(da_ptr.dtype.element_ty), mask=mask)
            carry_r = _row(g, rows, BT - 1)
    first = base + ((T - 1 if REVERSE else 0) * D + offs_d) * W
    fr = tl.load(a_ptr + first, mask=mask_d, other=0.0).to(ACC)
    if IS_COMPLEX:
        fi = tl.load(a_ptr + first + 1, mask=mask_d, other=0.0).to(ACC)
        tl.store(dh0_ptr + state, fr * carry_r + fi * carry_i, mask=mask_d)
        tl.store(dh0_ptr + state + 1, fr * carry_i - fi * carry_r, mask=mask_d)
    else:
        tl.store(dh0_ptr + state, fr * carry_r, mask=mask_d)


def check_real(kernels: str, t: torch.Tensor) -> None:
    """The real-only kernels (``kernels`` names them in the error) refuse complex ``t``."""
    if t.is_complex():
        raise ValueError(f"{kernels} take real inputs; complex scans use the per-sequence kernels")


def _as_scalars(t: torch.Tensor | None) -> torch.Tensor | None:
    """A real view of ``t``: complex tensors become interleaved (real, imag) pairs."""
    return torch.view_as_real(t) if t is not None and t.is_complex() else t


LOOKBACK_TILES = {
    "fwd": {"BT": 32, "BD": 64, "num_warps": 1, "lookback": True},
    "bwd": {"BT": 16, "BD": 128, "num_warps": 1, "lookback": True},
}
"""The look-back kernels' tiles (``lookback.py``), the fastest of the v7 sweep at 8x16384x1536 in bfloat16."""


COPY_ENGINE_BD = 32
"""Channels a copy-engine tile (v10's sweep at both bf16 shapes: 32 beat 16)."""

COPY_ENGINE_PROGRAMS = 384
"""The fewest programs (sequences x 32-channel blocks) the copy-engine forward was timed at and beat the look-back
(8x16384x1536 bf16: 0.457 against 0.610 ms); below it the look-back keeps the launch."""


def launch_config(batch: int, width: int, dtype: torch.dtype, direction: str, copy_engine: bool = False) -> dict:
    """Tile sizes for ``[batch, *, width]``, from the H100 sweeps in benchmarks/NOTES.md (v3, v4, v7 and v10).

    Four warps on 64-channel blocks for wide problems, narrowing to 32 channels when that would leave fewer than
    about four programs per SM; 32-step tiles for the float32 backward, 64 otherwise. 16-bit inputs move half the
    bytes per step, so a program must own fewer channels to keep enough loads in flight: one warp on 32-channel
    blocks (32-step tiles backward) when that still gives about 1000 programs; below that the scan is split over
    time as well (``LOOKBACK_TILES``), one program a tile. With ``copy_engine`` (``copy_engine_takes``: the inputs
    can go through it) the 16-bit forward takes one-warp 64 x 32 tiles through the copy engine from
    ``COPY_ENGINE_PROGRAMS`` programs up (float16 at 8x4096x4096 on the H100, session 16: 0.288 ms against the
    look-back's 0.397, as bfloat16), pipelined two tiles deep from about 1000 programs (about 8 an SM) and four
    below that (v10). The copy-engine backward is opt-in: at the forward's tiles it lost to the look-back at
    8x16384x1536 and its forward+backward at 8x4096x4096 was not understood (v11).
    """
    programs = batch * triton.cdiv(width, 32)  # one-warp programs of the 16-bit tiles, both kinds 32 channels wide
    if copy_engine and dtype.itemsize == 2 and direction == "fwd" and programs >= COPY_ENGINE_PROGRAMS:
        stages = 2 if programs >= 1024 else 4
        cfg = {"BT": 64, "BD": COPY_ENGINE_BD, "num_warps": 1, "num_stages": stages, "tma": True}
    elif dtype.itemsize <= 2 and programs >= 1024:
        cfg = {"BT": 32 if direction == "bwd" else 64, "BD": 32, "num_warps": 1}
    elif dtype.itemsize <= 2:
        cfg = LOOKBACK_TILES[direction]
    else:
        block_d = 64 if batch * triton.cdiv(width, 64) >= 512 else 32
        block_t = 32 if direction == "bwd" and dtype.itemsize >= 4 else 64
        cfg = {"BT": block_t, "BD": block_d, "num_warps": 4}
    return {**cfg, "BD": min(cfg["BD"], triton.next_power_of_2(width))}


def linear_scan_triton_fwd(
    a: torch.Tensor, x: torch.Tensor, initial_state: torch.Tensor | None, reverse: bool, config: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward launch. ``initial_state`` is None or ``[B, D]`` in the accumulation dtype.

    Returns ``h [B, T, D]`` in ``x``'s dtype and the final state ``[B, D]`` in the accumulation dtype.
    """
    from .copy_engine import copy_engine_takes, linear_scan_copy_engine_fwd

    batch, steps, width = x.shape
    cfg = config or launch_config(batch, width, x.dtype, "fwd", copy_engine_takes(reverse, a, x))
    if cfg.get("lookback"):
        from .lookback import linear_scan_lookback_fwd

        return linear_scan_lookback_fwd(a, x, initial_state, reverse, cfg)
    if cfg.get("tma"):
        return linear_scan_copy_engine_fwd(a, x, initial_state, reverse, cfg)
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
    cfg = config or launch_config(batch, width, h.dtype, "bwd")
    if cfg.get("lookback"):
        from .lookback import linear_scan_lookback_bwd

        return linear_scan_lookback_bwd(a, h, initial_state, grad_h, grad_final_state, reverse, cfg)
    if cfg.get("tma"):
        from .copy_engine import linear_scan_copy_engine_bwd

        return linear_scan_copy_engine_bwd(a, h, initial_state, grad_h, grad_final_state, reverse, cfg)
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
