"""``selective_scan`` at one state a channel (N = 1: VMamba's routes), parallel in time within a tile.

With one state a channel the recurrence ``h_t = a_t h_{t-1} + x_t`` (``a_t = exp(dt_t A)``, ``x_t = dt_t B_t u_t``)
is a linear scan per channel, so a program need not walk time one step per loop iteration as ``triton.py``'s
kernels do (a few dozen instructions a step, most of them waiting). Each program loads ``[BD, BT]`` tiles (its
channels by ``BT`` steps; each channel's steps in one lane's registers) and scans them with
``tl.associative_scan`` along time, in registers without shuffles:

- the forward carries the state from tile to tile, writes ``y`` and, for a backward, the state entering each tile;
- the backward visits the tiles from the last, rebuilds the states from the tile's checkpoint with a scan whose
  combine also carries each element's exclusive prefix (the state before each step, with no shifted copy), and
  the state gradients ``dh_t = C_t dy'_t + a_{t+1} dh_{t+1}`` with the same scan over the tile flipped in
  registers (Triton 3.6's ``reverse=True`` scan added 160 shuffles a tile). Every other gradient is elementwise,
  or a sum over the channels (``dB``, ``dC`` a step, across lanes) or the steps (``dA``, ``dD``, ``d dt_bias``, once
  at the end).

Both take the tiles' checkpoints ``[B, n_tiles, D, 1]`` as ``triton.py``'s do, so the faces mix (the benchmark
times one with the other).
"""

import triton
import triton.language as tl
from triton.language.extra import libdevice

from ..linear.triton import _combine
from .triton import _discretised, _load_channels, _row


@triton.jit
def _combine_with_before(a1, x1, p1, q1, a2, x2, p2, q2):
    """``linear_scan``'s combine, ``(a, x)``, that also carries each element's exclusive prefix ``(p, q)``: the map
    from the state entering the segment to the state before its last element (``(1, 0)`` for one element)."""
    return a1 * a2, a2 * x1 + x2, a1 * p2, p2 * x1 + q2


@triton.jit
def _exp(x, FAST: tl.constexpr):
    """``exp(x)``: on the GPU libdevice's ``fast_expf`` (``ex2.approx.ftz``: results below 1e-38 flush to 0, which
    spares the denormal fix-up ``tl.exp`` adds, four instructions an element); ``tl.exp`` under the interpreter,
    which has no libdevice."""
    if FAST:
        return libdevice.fast_expf(x)
    return tl.exp(x)


@triton.jit
def _reciprocal(x, FAST: tl.constexpr):
    """``1 / x`` to about 2 ulp (``fast_dividef`` on the GPU)."""
    if FAST:
        return libdevice.fast_dividef(1.0, x)
    return 1.0 / x


@triton.jit
def _softplus_and_slope(x, FAST: tl.constexpr):
    """``softplus(x)`` as ``triton.py``'s ``_softplus`` defines it (``log(1 + exp(x))``, ``x`` above 20) and its
    derivative ``sigmoid(x)`` from the same exponential. On the GPU the logarithm is libdevice's ``fast_logf``
    (``lg2.approx``, a few instructions against ``tl.log``'s polynomial of about 25)."""
    e = _exp(tl.minimum(x, 20.0), FAST)
    if FAST:
        log = libdevice.fast_logf(1.0 + e)
    else:
        log = tl.log(1.0 + e)
    return tl.where(x > 20.0, x, log), e * _reciprocal(1.0 + e, FAST)


@triton.jit
def _column(tile, cols, index):
    """Column ``index`` of a ``[BD, BT]`` tile as a ``[BD]`` vector (in each thread's registers)."""
    return tl.sum(tl.where(cols[None, :] == index, tile, 0.0), axis=1)


@triton.jit
def _block(a_ptr, d_ptr, bias_ptr, D, G, channel_stride, BT: tl.constexpr, BD: tl.constexpr, HAS_D: tl.constexpr,
           HAS_BIAS: tl.constexpr, REVERSE: tl.constexpr):  # fmt: skip
    """This program's channels (offsets, mask), group of ``B``/``C`` and per-channel parameters (``A``,
    ``D``, ``dt_bias`` as ``[BD, 1]``), and a tile's element offsets from its first step's row (``[BD, BT]``
    int32, steps against the rows when ``REVERSE``) and each step's row from the first (``[1, BT]``). The
    channel stride (1) comes in at run time, so Triton cannot prove the channels contiguous and lays the channels
    across lanes (one a lane, two at 64 channels in one warp), each with the tile's steps in its lane's registers."""
    pid_d = tl.program_id(0)
    offs_d = pid_d * BD + tl.arange(0, BD)
    mask_d = offs_d < D
    cols = tl.arange(0, BT)
    along = -cols if REVERSE else cols
    A = tl.load(a_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    skip = _load_channels(d_ptr, offs_d, mask_d, HAS_D)[:, None]
    bias = _load_channels(bias_ptr, offs_d, mask_d, HAS_BIAS)[:, None]
    tile_offs = along[None, :] * D + offs_d[:, None] * channel_stride
    return offs_d, mask_d, (pid_d * BD) // (D // G), cols, A, skip, bias, tile_offs, along[None, :]


@triton.jit
def _tile(dt_ptr, u_ptr, b_ptr, c_ptr, bias, A, pid_b, k, cols, tile_offs, along, T, D, G, group,
          BT: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr,
          EVEN: tl.constexpr, FAST: tl.constexpr):  # fmt: skip
    """Tile ``k`` of sequence ``pid_b`` in processing order: the flat row of its first step, its steps' mask
    (``[1, BT]``; all true when ``EVEN``, ``BT`` dividing ``T``, so the loads and stores go unpredicated), ``u``,
    ``B_t`` and ``C_t`` (broadcast over channels), softplus's argument, ``dt``, its derivative (1 without softplus)
    and the decays, float32. ``dt`` is 0 at masked steps, so they keep the state."""
    first = _row(pid_b * T, T, k * BT, REVERSE)
    if EVEN:
        valid = tl.full([1, BT], 1, dtype=tl.int1)
    else:
        valid = (k * BT + cols < T)[None, :]
    raw = tl.load(dt_ptr + first * D + tile_offs, mask=valid, other=0.0).to(tl.float32)
    u = tl.load(u_ptr + first * D + tile_offs, mask=valid, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + (first * G + group) + along * G, mask=valid, other=0.0).to(tl.float32)
    c = tl.load(c_ptr + (first * G + group) + along * G, mask=valid, other=0.0).to(tl.float32)
    raw = _discretised(raw, bias, valid, HAS_BIAS, False)
    step, slope = raw, tl.full(raw.shape, 1.0, dtype=tl.float32)
    if SOFTPLUS:
        step, slope = _softplus_and_slope(raw, FAST)
    step = tl.where(valid, step, 0.0)
    return first, valid, u, b, c, raw, step, slope, _exp(step * A, FAST)


@triton.jit(do_not_specialize=["T", "channel_stride"])
def _selective_fwd_single_state_kernel(
    u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, z_ptr, bias_ptr, h0_ptr, y_ptr, ht_ptr, hs_ptr,
    T, D, G, channel_stride,
    BT: tl.constexpr, TILE: tl.constexpr, BD: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H0: tl.constexpr, SAVE_STATES: tl.constexpr,
    REVERSE: tl.constexpr, EVEN: tl.constexpr, FAST: tl.constexpr,
):  # fmt: skip
    # Tiles of TILE steps, a checkpoint every BT (a multiple of TILE): short tiles keep the registers, and so the
    # programs an SM, up without storing more checkpoints.
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d, mask_d, group, cols, A, skip, bias, tile_offs, along = _block(
        a_ptr, d_ptr, bias_ptr, D, G, channel_stride, TILE, BD, HAS_D, HAS_BIAS, REVERSE
    )
    state = pid_b * D + offs_d
    h_in = tl.zeros([BD], dtype=tl.float32)
    if HAS_H0:
        h_in = tl.load(h0_ptr + state, mask=mask_d, other=0.0).to(tl.float32)
    n_checkpoints = tl.cdiv(T, BT)
    for k in range(0, tl.cdiv(T, TILE)):
        if SAVE_STATES and (k * TILE) % BT == 0:
            tl.store(hs_ptr + (pid_b * n_checkpoints + k * TILE // BT) * D + offs_d, h_in, mask=mask_d)
        first, valid, u, b, c, _, step, _, decay = _tile(
            dt_ptr, u_ptr, b_ptr, c_ptr, bias, A, pid_b, k, cols, tile_offs, along, T, D, G, group, TILE, HAS_BIAS,
            SOFTPLUS, REVERSE, EVEN, FAST,
        )  # fmt: skip
        reach, h = tl.associative_scan((decay, step * u * b), 1, _combine)
        h += reach * h_in[:, None]
        y = h * c + skip * u
        if HAS_Z:
            z = tl.load(z_ptr + first * D + tile_offs, mask=valid, other=0.0).to(tl.float32)
            y = y * z * _reciprocal(1.0 + _exp(-z, FAST), FAST)
        tl.store(y_ptr + first * D + tile_offs, y.to(y_ptr.dtype.element_ty), mask=valid)
        h_in = _column(h, cols, TILE - 1)  # masked steps keep the state, so the last column is the last state
    tl.store(ht_ptr + state, h_in, mask=mask_d)


@triton.jit(do_not_specialize=["T", "channel_stride"])
def _selective_bwd_single_state_kernel(
    u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, z_ptr, bias_ptr, hs_ptr, dy_ptr, dht_ptr,
    du_ptr, ddt_ptr, dz_ptr, da_ptr, db_ptr, dc_ptr, dd_ptr, dbias_ptr, dh0_ptr,
    T, D, G, channel_stride,
    BT: tl.constexpr, BD: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr, HAS_DHT: tl.constexpr, REVERSE: tl.constexpr, EVEN: tl.constexpr, FAST: tl.constexpr,
):  # fmt: skip
    pid_b = tl.program_id(1).to(tl.int64)
    n_blocks = tl.num_programs(0)
    offs_d, mask_d, group, cols, A, skip, bias, tile_offs, along = _block(
        a_ptr, d_ptr, bias_ptr, D, G, channel_stride, BT, BD, HAS_D, HAS_BIAS, REVERSE
    )
    state = pid_b * D + offs_d
    carried_in = tl.zeros([BD], dtype=tl.float32)  # a_{t+1} dh_{t+1} for the step after the tile (dh_T at the end)
    if HAS_DHT:
        carried_in = tl.load(dht_ptr + state, mask=mask_d, other=0.0).to(tl.float32)
    ones = tl.full([BD, BT], 1.0, dtype=tl.float32)
    zeros = tl.zeros([BD, BT], dtype=tl.float32)
    grad_a = tl.zeros([BD], dtype=tl.float32)
    grad_skip = tl.zeros([BD], dtype=tl.float32)
    grad_bias = tl.zeros([BD], dtype=tl.float32)
    n_tiles = tl.cdiv(T, BT)
    for k_back in range(0, n_tiles):
        k = n_tiles - 1 - k_back
        first, valid, u, b, c, raw, step, slope, decay = _tile(
            dt_ptr, u_ptr, b_ptr, c_ptr, bias, A, pid_b, k, cols, tile_offs, along, T, D, G, group, BT, HAS_BIAS,
            SOFTPLUS, REVERSE, EVEN, FAST,
        )  # fmt: skip
        offs = first * D + tile_offs
        dy = tl.load(dy_ptr + offs, mask=valid, other=0.0).to(tl.float32)
        h_in = tl.load(hs_ptr + (pid_b * n_tiles + k) * D + offs_d, mask=mask_d, other=0.0)[:, None]
        reach, h, reach_before, before = tl.associative_scan(
            (decay, step * u * b, ones, zeros), 1, _combine_with_before
        )
        h += reach * h_in
        before += reach_before * h_in
        if HAS_Z:
            z = tl.load(z_ptr + offs, mask=valid, other=0.0).to(tl.float32)
            gate = _reciprocal(1.0 + _exp(-z, FAST), FAST)
            y = h * c + skip * u
            tl.store(dz_ptr + offs, (dy * y * gate * (1.0 + z * (1.0 - gate))).to(dz_ptr.dtype.element_ty), mask=valid)
            dy = dy * z * gate
        inject = c * dy
        # Over the steps backwards: passed_t = a_t dh_t, what step t hands the step before it; after_t from t + 1.
        backwards = tl.associative_scan(
            (tl.flip(decay, 1), tl.flip(decay * inject, 1), ones, zeros), 1, _combine_with_before
        )
        reach, passed = tl.flip(backwards[0], 1), tl.flip(backwards[1], 1)
        reach_after, after = tl.flip(backwards[2], 1), tl.flip(backwards[3], 1)
        dh = inject + after + reach_after * carried_in[:, None]
        carried_in = _column(passed + reach * carried_in[:, None], cols, 0)
        dh_b = dh * b
        carried = dh * decay * before  # dh's share through the decay: gives dA and dt's decay term
        dstep = tl.where(valid, (carried * A + dh_b * u) * slope, 0.0)
        tl.store(du_ptr + offs, (dh_b * step + skip * dy).to(du_ptr.dtype.element_ty), mask=valid)
        tl.store(ddt_ptr + offs, dstep.to(ddt_ptr.dtype.element_ty), mask=valid)
        grad_a += tl.sum(carried * step, axis=1)  # sums over a lane's own steps
        grad_skip += tl.sum(dy * u, axis=1)
        grad_bias += tl.sum(dstep, axis=1)
        parts = (first + along) * n_blocks + tl.program_id(0)
        tl.store(db_ptr + parts, tl.sum(dh * step * u, axis=0, keep_dims=True), mask=valid)
        tl.store(dc_ptr + parts, tl.sum(h * dy, axis=0, keep_dims=True), mask=valid)
    tl.store(dh0_ptr + state, carried_in, mask=mask_d)
    tl.store(da_ptr + state, grad_a, mask=mask_d)
    tl.store(dd_ptr + state, grad_skip, mask=mask_d)
    tl.store(dbias_ptr + state, grad_bias, mask=mask_d)


def launch_single_state(kernel, tensors: tuple, steps: int, flags: dict, cfg: dict) -> None:
    """``kernel`` (this file's forward or backward) over ``tensors`` (its pointer arguments, None where absent;
    ``u``, ``dt``, ``A``, ``B`` first), one program per ``cfg["BD"]`` channels of a sequence, with the constants
    ``flags``; on CUDA with the fast exponential, logarithm and reciprocal (``_exp``). A ``maxnreg`` in ``cfg``
    caps the registers a thread (Triton's compile option; none by default)."""
    u, *_ = tensors
    batch, _, channels = u.shape
    groups = tensors[3].shape[2]
    if tensors[2].shape[1] != 1:
        raise ValueError(f"the single-state kernels take N = 1, got A of shape {tuple(tensors[2].shape)}")
    if channels % cfg["BD"]:
        raise ValueError(f"a block of {cfg['BD']} channels must divide D = {channels}")
    kernel[(channels // cfg["BD"], batch)](
        *tensors,
        steps,
        channels,
        groups,
        1,
        BT=cfg["BT"],
        BD=cfg["BD"],
        num_warps=cfg["num_warps"],
        EVEN=steps % cfg["BT"] == 0,
        FAST=u.is_cuda,
        **flags,
        **{key: cfg[key] for key in ("maxnreg",) if key in cfg},
    )
