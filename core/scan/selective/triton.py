"""The Triton face of ``selective_scan``: the state ``[BD, N]`` stays in registers, never in memory.

Each program owns ``BD`` channels of one sequence (all in one group of ``B``/``C``) and walks time in tiles of
``BT`` steps. A tile's gates ``exp(dt A)`` and inputs ``dt B u`` (``[BT, BD, N]``) are formed in registers,
scanned along time with ``tl.associative_scan``, joined to the carried state and read out as
``y = C · h + D u`` (times ``silu(z)``); only ``y`` is written, plus the state entering each tile when a
backward will follow (``[B, n_tiles, D, N]`` float32, the checkpoints the backward restarts from).

The backward walks the tiles the other way: it recomputes a tile's states from its checkpoint, scans the state
gradient ``dh_t = C_t dy'_t + exp(dt_{t+s} A) dh_{t+s}`` against the forward direction ``s``, and forms every
gradient from ``dh`` and ``h``. The state before each step, ``h_{t-s}``, comes from a scan of the inputs shifted
by one step with the checkpoint in front (not from ``h_t - dt_t B_t u_t``, which cancels, and which a fused
multiply-add turns into the rounding error of ``dt_t B_t u_t`` where the true value is 0).
Per-channel sums over time (``dA``, ``dD``, ``d dt_bias``) are written per sequence and per-step sums over
channels (``dB``, ``dC``) per channel block; the wrapper adds those partials up.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _combine(a1, x1, a2, x2):
    return a1 * a2, a2 * x1 + x2


@triton.jit
def _softplus(x):
    return tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))))


@triton.jit
def _time_step(dt_ptr, bias, offs, mask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """``dt`` for a ``[BT, BD]`` tile after bias and softplus, and the raw pre-softplus value; 0 where masked."""
    raw = tl.load(dt_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw = raw + bias[None, :]
    step = raw
    if SOFTPLUS:
        step = _softplus(raw)
    return tl.where(mask, step, 0.0), raw


@triton.jit
def _load_channels(ptr, offs_d, mask_d, PRESENT: tl.constexpr, BD: tl.constexpr):
    """A per-channel ``[BD]`` parameter in float32, zeros when not ``PRESENT``."""
    values = tl.zeros([BD], dtype=tl.float32)
    if PRESENT:
        values = tl.load(ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    return values


@triton.jit
def _channel_block(pid_d, pid_b, D, G, N, BD: tl.constexpr, BN: tl.constexpr):
    """This program's channels and state columns (offsets and masks), its group of ``B``/``C``, and the offsets
    of its ``[BD, BN]`` slice of a ``[B, D, N]`` state."""
    offs_d = pid_d * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    mask_d = offs_d < D
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    state = (pid_b * D + offs_d)[:, None] * N + offs_n[None, :]
    return offs_d, offs_n, mask_d, mask_n, mask_dn, (pid_d * BD) // (D // G), state


@triton.jit
def _tile_indices(i, n_tiles, T, BT: tl.constexpr, BACKWARD: tl.constexpr):
    """Time indices of the ``i``-th tile visited, from the end when ``BACKWARD``."""
    if BACKWARD:
        return (n_tiles - 1 - i) * BT + tl.arange(0, BT)
    return i * BT + tl.arange(0, BT)


@triton.jit(do_not_specialize=["T"])
def _selective_fwd_kernel(
    u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, z_ptr, bias_ptr, h0_ptr, y_ptr, ht_ptr, hs_ptr,
    T, D, G, N,
    BT: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H0: tl.constexpr, SAVE_STATES: tl.constexpr,
    REVERSE: tl.constexpr,
):  # fmt: skip
    LAST: tl.constexpr = 0 if REVERSE else BT - 1
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d, offs_n, mask_d, mask_n, mask_dn, group, state = _channel_block(pid_d, pid_b, D, G, N, BD, BN)
    rows = tl.arange(0, BT)
    A = tl.load(a_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    skip = _load_channels(d_ptr, offs_d, mask_d, HAS_D, BD)
    bias = _load_channels(bias_ptr, offs_d, mask_d, HAS_BIAS, BD)
    h = tl.zeros([BD, BN], dtype=tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + state, mask=mask_dn, other=0.0).to(tl.float32)
    n_tiles = tl.cdiv(T, BT)
    for i in range(0, n_tiles):
        offs_t = _tile_indices(i, n_tiles, T, BT, REVERSE)
        tile = i
        if REVERSE:
            tile = n_tiles - 1 - i
        if SAVE_STATES:
            tl.store(hs_ptr + (pid_b * n_tiles + tile) * D * N + state - pid_b * D * N, h, mask=mask_dn)
        mask_t = offs_t < T
        mask = mask_t[:, None] & mask_d[None, :]
        offs = (pid_b * T + offs_t.to(tl.int64))[:, None] * D + offs_d[None, :]
        offs_bc = ((pid_b * T + offs_t.to(tl.int64)) * G + group)[:, None] * N + offs_n[None, :]
        mask_bc = mask_t[:, None] & mask_n[None, :]
        step, _ = _time_step(dt_ptr, bias, offs, mask, HAS_BIAS, SOFTPLUS)
        u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + offs_bc, mask=mask_bc, other=0.0).to(tl.float32)
        c = tl.load(c_ptr + offs_bc, mask=mask_bc, other=0.0).to(tl.float32)
        decay = tl.exp(step[:, :, None] * A[None, :, :])
        drive = (step * u)[:, :, None] * b[:, None, :]
        decay, drive = tl.associative_scan((decay, drive), 0, _combine, reverse=REVERSE)
        hs = drive + decay * h[None, :, :]
        y = tl.sum(hs * c[:, None, :], axis=2) + skip[None, :] * u
        if HAS_Z:
            z = tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            y = y * z * tl.sigmoid(z)
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
        h = tl.sum(tl.where(rows[:, None, None] == LAST, hs, 0.0), axis=0)
    tl.store(ht_ptr + state, h, mask=mask_dn)


@triton.jit(do_not_specialize=["T"])
def _selective_bwd_kernel(
    u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, z_ptr, bias_ptr, hs_ptr, dy_ptr, dht_ptr,
    du_ptr, ddt_ptr, dz_ptr, da_ptr, db_ptr, dc_ptr, dd_ptr, dbias_ptr, dh0_ptr,
    T, D, G, N,
    BT: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_DHT: tl.constexpr, REVERSE: tl.constexpr,
):  # fmt: skip
    S: tl.constexpr = -1 if REVERSE else 1
    EDGE: tl.constexpr = BT - 1 if REVERSE else 0
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d, offs_n, mask_d, mask_n, mask_dn, group, state = _channel_block(pid_d, pid_b, D, G, N, BD, BN)
    rows = tl.arange(0, BT)
    A = tl.load(a_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    skip = _load_channels(d_ptr, offs_d, mask_d, HAS_D, BD)
    bias = _load_channels(bias_ptr, offs_d, mask_d, HAS_BIAS, BD)
    n_blocks = tl.num_programs(0)
    dh = tl.zeros([BD, BN], dtype=tl.float32)
    if HAS_DHT:
        dh = tl.load(dht_ptr + state, mask=mask_dn, other=0.0).to(tl.float32)
    grad_a = tl.zeros([BD, BN], dtype=tl.float32)
    grad_skip = tl.zeros([BD], dtype=tl.float32)
    grad_bias = tl.zeros([BD], dtype=tl.float32)
    n_tiles = tl.cdiv(T, BT)
    for i in range(0, n_tiles):
        offs_t = _tile_indices(i, n_tiles, T, BT, not REVERSE)
        tile = n_tiles - 1 - i
        if REVERSE:
            tile = i
        mask_t = offs_t < T
        mask = mask_t[:, None] & mask_d[None, :]
        offs = (pid_b * T + offs_t.to(tl.int64))[:, None] * D + offs_d[None, :]
        offs_bc = ((pid_b * T + offs_t.to(tl.int64)) * G + group)[:, None] * N + offs_n[None, :]
        mask_bc = mask_t[:, None] & mask_n[None, :]
        # Recompute the tile's states from its checkpoint.
        step, raw = _time_step(dt_ptr, bias, offs, mask, HAS_BIAS, SOFTPLUS)
        u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + offs_bc, mask=mask_bc, other=0.0).to(tl.float32)
        c = tl.load(c_ptr + offs_bc, mask=mask_bc, other=0.0).to(tl.float32)
        h_in = tl.load(hs_ptr + (pid_b * n_tiles + tile) * D * N + state - pid_b * D * N, mask=mask_dn, other=0.0)
        # The states before each step: the previous step's (gate, input) in every row, (0, h_in) in the first.
        first_row = (rows == EDGE)[:, None]
        mask_prev = mask & ((offs_t - S >= 0) & (offs_t - S < T))[:, None] & ~first_row
        step_prev, _ = _time_step(dt_ptr, bias, offs - S * D, mask_prev, HAS_BIAS, SOFTPLUS)
        u_prev = tl.load(u_ptr + offs - S * D, mask=mask_prev, other=0.0).to(tl.float32)
        mask_bc_prev = mask_bc & ((offs_t - S >= 0) & (offs_t - S < T))[:, None] & (rows != EDGE)[:, None]
        b_prev = tl.load(b_ptr + offs_bc - S * G * N, mask=mask_bc_prev, other=0.0).to(tl.float32)
        decay_prev = tl.where(first_row[:, :, None], 0.0, tl.exp(step_prev[:, :, None] * A[None, :, :]))
        drive_prev = tl.where(
            first_row[:, :, None], h_in[None, :, :], (step_prev * u_prev)[:, :, None] * b_prev[:, None, :]
        )
        _, before = tl.associative_scan((decay_prev, drive_prev), 0, _combine, reverse=REVERSE)
        before = tl.exp(step[:, :, None] * A[None, :, :]) * before
        drive = (step * u)[:, :, None] * b[:, None, :]
        hs = before + drive
        # The output gradient through the gate, then the state gradient, scanned against the forward direction.
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_Z:
            z = tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            gate = tl.sigmoid(z)
            y = tl.sum(hs * c[:, None, :], axis=2) + skip[None, :] * u
            tl.store(dz_ptr + offs, (dy * y * gate * (1.0 + z * (1.0 - gate))).to(dz_ptr.dtype.element_ty), mask=mask)
            dy = dy * z * gate
        offs_t_next = offs_t + S
        mask_next = mask & ((offs_t_next >= 0) & (offs_t_next < T))[:, None]
        step_next, _ = _time_step(dt_ptr, bias, offs + S * D, mask_next, HAS_BIAS, SOFTPLUS)
        coefficient = tl.exp(step_next[:, :, None] * A[None, :, :])
        coefficient, dhs = tl.associative_scan(
            (coefficient, dy[:, :, None] * c[:, None, :]), 0, _combine, reverse=not REVERSE
        )
        dhs = dhs + coefficient * dh[None, :, :]
        # Gradients of everything that made the tile.
        du = tl.sum(dhs * b[:, None, :], axis=2) * step + skip[None, :] * dy
        dstep = tl.sum(dhs * (A[None, :, :] * before + b[:, None, :] * u[:, :, None]), axis=2)
        if SOFTPLUS:
            dstep = dstep * tl.sigmoid(raw)
        dstep = tl.where(mask, dstep, 0.0)
        tl.store(du_ptr + offs, du.to(du_ptr.dtype.element_ty), mask=mask)
        tl.store(ddt_ptr + offs, dstep.to(ddt_ptr.dtype.element_ty), mask=mask)
        grad_a += tl.sum(dhs * before * step[:, :, None], axis=0)
        grad_skip += tl.sum(dy * u, axis=0)
        grad_bias += tl.sum(dstep, axis=0)
        offs_part = ((pid_b * T + offs_t.to(tl.int64)) * n_blocks + pid_d)[:, None] * N + offs_n[None, :]
        db = tl.sum(dhs * (step * u)[:, :, None], axis=1)
        dc = tl.sum(hs * dy[:, :, None], axis=1)
        tl.store(db_ptr + offs_part, db, mask=mask_bc)
        tl.store(dc_ptr + offs_part, dc, mask=mask_bc)
        dh = tl.sum(tl.where(rows[:, None, None] == EDGE, dhs, 0.0), axis=0)
    # The state before the first step fed the first step through its gate.
    first = pid_b * T * D + offs_d
    if REVERSE:
        first += (T - 1) * D
    step_first, _ = _time_step(dt_ptr, bias, first[None, :], mask_d[None, :], HAS_BIAS, SOFTPLUS)
    tl.store(dh0_ptr + state, tl.exp(tl.reshape(step_first, [BD])[:, None] * A) * dh, mask=mask_dn)
    tl.store(da_ptr + state, grad_a, mask=mask_dn)
    tl.store(dd_ptr + pid_b * D + offs_d, grad_skip, mask=mask_d)
    tl.store(dbias_ptr + pid_b * D + offs_d, grad_bias, mask=mask_d)


def block_channels(channels: int, groups: int) -> int:
    """Channels per program: the largest power of two up to 32 dividing ``D / G``, so a block stays in a group."""
    per_group = channels // groups
    return max(bs for bs in (1, 2, 4, 8, 16, 32) if per_group % bs == 0)


def launch_config(channels: int, groups: int, state_size: int) -> dict:
    """``BD`` channels (``block_channels``) and ``BT`` time steps per program tile, ``BN >= N`` states (so a
    ``[BT, BD, BN]`` tile stays in registers) and the warps per program."""
    block_n = triton.next_power_of_2(state_size)
    return {
        "BD": block_channels(channels, groups),
        "BT": max(4, min(64, 256 // block_n)),
        "BN": block_n,
        "num_warps": 4,
    }


def selective_scan_triton_fwd(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, reverse, save_states, config=None
):
    """Forward launch on contiguous inputs. Returns ``y`` (``u``'s dtype), the final state ``[B, D, N]`` float32
    and, if ``save_states``, the checkpoints ``[B, n_tiles, D, N]`` (else None). ``config`` overrides
    ``launch_config`` (the benchmark's sweep); the backward must get the same one."""
    batch, steps, channels = u.shape
    groups, state_size = B.shape[2:]
    cfg = config or launch_config(channels, groups, state_size)
    n_tiles = triton.cdiv(steps, cfg["BT"])
    y = torch.empty_like(u)
    final_state = torch.empty(batch, channels, state_size, device=u.device, dtype=torch.float32)
    checkpoints = (
        torch.empty(batch, n_tiles, channels, state_size, device=u.device, dtype=torch.float32) if save_states else None
    )
    _selective_fwd_kernel[(triton.cdiv(channels, cfg["BD"]), batch)](
        u, dt, A, B, C, D, z, dt_bias, initial_state, y, final_state, checkpoints,
        steps, channels, groups, state_size, **cfg,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=dt_softplus,
        HAS_H0=initial_state is not None, SAVE_STATES=save_states, REVERSE=reverse,
    )  # fmt: skip
    return y, final_state, checkpoints


def selective_scan_triton_bwd(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, checkpoints, grad_y, grad_final, reverse, config=None
):
    """Backward launch. Returns the gradients of ``(u, dt, A, B, C, D, z, dt_bias, initial_state)``, each None
    where that input was None (the initial state's gradient is always returned)."""
    batch, steps, channels = u.shape
    groups, state_size = B.shape[2:]
    cfg = config or launch_config(channels, groups, state_size)
    n_blocks = triton.cdiv(channels, cfg["BD"])
    du, ddt = torch.empty_like(u), torch.empty_like(dt)
    dz = torch.empty_like(z) if z is not None else None
    da = torch.empty(batch, channels, state_size, device=u.device, dtype=torch.float32)
    db_blocks = torch.empty(batch, steps, n_blocks, state_size, device=u.device, dtype=torch.float32)
    dc_blocks = torch.empty_like(db_blocks)
    dd = torch.empty(batch, channels, device=u.device, dtype=torch.float32)
    dbias = torch.empty_like(dd)
    dh0 = torch.empty(batch, channels, state_size, device=u.device, dtype=torch.float32)
    _selective_bwd_kernel[(n_blocks, batch)](
        u, dt, A, B, C, D, z, dt_bias, checkpoints, grad_y, grad_final,
        du, ddt, dz, da, db_blocks, dc_blocks, dd, dbias, dh0,
        steps, channels, groups, state_size, **cfg,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=dt_softplus,
        HAS_DHT=grad_final is not None, REVERSE=reverse,
    )  # fmt: skip
    by_group = (batch, steps, groups, n_blocks // groups, state_size)
    return (
        du,
        ddt,
        da.sum(0).to(A.dtype),
        db_blocks.view(by_group).sum(3).to(B.dtype),
        dc_blocks.view(by_group).sum(3).to(C.dtype),
        None if D is None else dd.sum(0).to(D.dtype),
        dz,
        None if dt_bias is None else dbias.sum(0).to(dt_bias.dtype),
        dh0,
    )
