"""The Triton face of ``selective_scan``: the state ``[BD, N]`` stays in registers, never in memory.

Each program owns ``BD`` channels of one sequence (all in one group of ``B``/``C``), or of one time piece of it
when inference is split in time (``time_split.py``: pieces of ``L`` steps, each from its own state), and walks
time one step per loop iteration: it loads the step's ``dt, u, z`` (``[BD]``) and ``B_t, C_t`` (``[N]``), updates
``h = exp(dt A) h + dt B_t u`` and writes ``y = C_t · h + D u`` (times ``silu(z)``). Time never crosses threads,
so nothing is exchanged between lanes but the sum over ``N`` of the readout. When a backward will follow, the
state entering every tile of ``BT`` steps (in processing order) is written as a checkpoint
(``[B, n_tiles, D, N]`` float32).

The backward visits the tiles in reverse. For each it replays the tile's ``BT`` steps from its checkpoint into a
scratch tile ``[BT, BD, N]`` of its own (float32, in global memory that stays in L2), then walks them backwards:
``dh += C_t dy'_t``, every gradient of step ``t`` from ``dh``, ``h_t`` and the state before the step (the
previous scratch row, or the checkpoint), then ``dh = exp(dt_t A) dh``; after the first step ``dh`` is the
initial state's gradient. Per-channel sums over time (``dA``, ``dD``, ``d dt_bias``) are written per sequence and
per-step sums over channels (``dB``, ``dC``) per channel block; the wrapper adds those partials up.
"""

import torch
import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)  # exp(x) = exp2(x log2 e): A is scaled once, not every step
LN2 = tl.constexpr(0.6931471805599453)  # 1 / LOG2E: the backward's sums against A log2 e back to A
# The kernels load each step's inputs one step ahead when N is at most this: such a step is a few dozen
# instructions and waits on its loads (offline at N = 1: 63-73 a forward step, 73 + 203 a backward one, at 64
# registers with or without the prefetch); at N = 16 the loops are bound by issue and the prefetch would add 30-40
# instructions and 40 registers a step (kernel_sass).
PREFETCH_STATES = 4


@triton.jit
def _softplus(x):
    return tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))))


@triton.jit
def _discretised(raw, bias, mask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """A step's ``dt`` from its loaded value: plus the bias, through softplus if asked; 0 where masked."""
    step = raw
    if HAS_BIAS:
        step = step + bias
    if SOFTPLUS:
        step = _softplus(step)
    return tl.where(mask, step, 0.0)


@triton.jit
def _load_channels(ptr, offs_d, mask_d, PRESENT: tl.constexpr):
    """A per-channel parameter at ``offs_d`` (``[BD]`` or ``[BD, 1]``) in float32, zeros when not ``PRESENT``."""
    values = tl.zeros(offs_d.shape, dtype=tl.float32)
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
def _load_step(dt_ptr, u_ptr, b_ptr, c_ptr, z_ptr, row, G, group, N, D, channel, offs_n, in_channel, mask_n,
               WITH_C: tl.constexpr, WITH_Z: tl.constexpr):  # fmt: skip
    """One step's loads, float32, 0 where masked: raw ``dt`` and ``u`` (``channel``'s shape: ``[BD, 1]`` in the
    forward, ``[BD]`` in the backward), ``B_t`` (``[BN]``), and ``C_t`` and ``z`` when asked (zeros
    otherwise)."""
    raw = tl.load(dt_ptr + row * D + channel, mask=in_channel, other=0.0).to(tl.float32)
    u = tl.load(u_ptr + row * D + channel, mask=in_channel, other=0.0).to(tl.float32)
    offs_bc = (row * G + group) * N + offs_n
    b = tl.load(b_ptr + offs_bc, mask=mask_n, other=0.0).to(tl.float32)
    c = tl.zeros(b.shape, dtype=tl.float32)
    if WITH_C:
        c = tl.load(c_ptr + offs_bc, mask=mask_n, other=0.0).to(tl.float32)
    z = tl.zeros(u.shape, dtype=tl.float32)
    if WITH_Z:
        z = tl.load(z_ptr + row * D + channel, mask=in_channel, other=0.0).to(tl.float32)
    return raw, u, b, c, z


@triton.jit
def _walk_loads(dt_ptr, u_ptr, b_ptr, c_ptr, dy_ptr, z_ptr, scratch, h_in, row, j, G, group, N, D, offs_d, offs_n,
                mask_d, mask_n, BD: tl.constexpr, BN: tl.constexpr, HAS_Z: tl.constexpr):  # fmt: skip
    """The walk-back's loads for scratch row ``j`` (flat step ``row``), float32, 0 where masked: ``_load_step``'s
    with ``C_t`` (and ``z`` if ``HAS_Z``), ``dy`` (``[BD]``), and the state before the step (``h_in`` at row 0)."""
    raw, u, b, c, z = _load_step(
        dt_ptr, u_ptr, b_ptr, c_ptr, z_ptr, row, G, group, N, D, offs_d, offs_n, mask_d, mask_n, True, HAS_Z
    )
    dy = tl.load(dy_ptr + row * D + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    before = tl.where(j == 0, h_in, tl.load(scratch + (j - 1) * BD * BN, mask=j > 0, other=0.0))
    return raw, u, dy, z, b, c, before


@triton.jit
def _row(start, count, i, REVERSE: tl.constexpr):
    """The flat ``[B * T]`` row of processing step ``i`` of the ``count`` rows from ``start`` (walked backwards
    when ``REVERSE``)."""
    if REVERSE:
        return start + count - 1 - i
    return start + i


@triton.jit
def _inside(i, T, EVEN: tl.constexpr):
    """Whether step ``i`` is one of the ``T``: a constant when ``EVEN`` (the tiles divide ``T``), so nothing that
    it masks is predicated."""
    inside = i < T
    if EVEN:
        inside = tl.full([], 1, dtype=tl.int1)
    return inside


@triton.jit(do_not_specialize=["T", "L"])
def _selective_fwd_kernel(
    u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, z_ptr, bias_ptr, h0_ptr, y_ptr, ht_ptr, hs_ptr, dt_sum_ptr,
    T, L, D, G, N,
    BT: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H0: tl.constexpr, SAVE_STATES: tl.constexpr,
    REVERSE: tl.constexpr, WRITE_Y: tl.constexpr, SUM_DT: tl.constexpr, PREFETCH: tl.constexpr, UNROLL: tl.constexpr,
):  # fmt: skip
    pid_d = tl.program_id(0)
    n_pieces = tl.cdiv(T, L)  # one piece of L = T steps unless split in time
    first = (tl.program_id(1) % n_pieces) * L  # int32 like T, so the loop counter stays 32-bit
    count = tl.minimum(L, T - first)
    piece = tl.program_id(1).to(tl.int64)  # sequence * n_pieces + piece
    pid_b = piece // n_pieces
    offs_d, offs_n, mask_d, mask_n, mask_dn, group, state = _channel_block(pid_d, piece, D, G, N, BD, BN)
    A = tl.load(a_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32) * LOG2E
    channel, in_channel = offs_d[:, None], mask_d[:, None]
    skip = _load_channels(d_ptr, channel, in_channel, HAS_D)
    bias = _load_channels(bias_ptr, channel, in_channel, HAS_BIAS)
    h = tl.zeros([BD, BN], dtype=tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + state, mask=mask_dn, other=0.0).to(tl.float32)
    checkpoint = piece * tl.cdiv(T, BT) * D * N + (state - piece * D * N)  # tile 0's (saved with one piece only)
    dt_sum = tl.zeros([BD, 1], dtype=tl.float32)
    start = pid_b * T + first
    if PREFETCH:
        raw_next, u_next, b_next, c_next, z_next = _load_step(
            dt_ptr, u_ptr, b_ptr, c_ptr, z_ptr, _row(start, count, 0, REVERSE), G, group, N, D, channel, offs_n,
            in_channel, mask_n, WRITE_Y, WRITE_Y and HAS_Z,
        )  # fmt: skip
    for i in tl.range(0, count, loop_unroll_factor=UNROLL):
        if PREFETCH:  # this step's loads were issued during the step before; issue the next step's
            raw, u, b, c, z = raw_next, u_next, b_next, c_next, z_next
            more = i + 1 < count
            raw_next, u_next, b_next, c_next, z_next = _load_step(
                dt_ptr, u_ptr, b_ptr, c_ptr, z_ptr, _row(start, count, i + 1, REVERSE), G, group, N, D, channel,
                offs_n, in_channel & more, mask_n & more, WRITE_Y, WRITE_Y and HAS_Z,
            )  # fmt: skip
        else:
            raw, u, b, c, z = _load_step(
                dt_ptr, u_ptr, b_ptr, c_ptr, z_ptr, _row(start, count, i, REVERSE), G, group, N, D, channel, offs_n,
                in_channel, mask_n, WRITE_Y, WRITE_Y and HAS_Z,
            )  # fmt: skip
        if SAVE_STATES:
            if i % BT == 0:
                tl.store(hs_ptr + checkpoint + (i // BT) * D * N, h, mask=mask_dn)
        step = _discretised(raw, bias, in_channel, HAS_BIAS, SOFTPLUS)
        h = tl.exp2(step * A) * h + (step * u) * b[None, :]
        if SUM_DT:
            dt_sum += step
        if WRITE_Y:
            y = tl.sum(h * c[None, :], axis=1, keep_dims=True) + skip * u
            if HAS_Z:
                y = y * z * tl.sigmoid(z)
            row = _row(start, count, i, REVERSE)
            tl.store(y_ptr + row * D + channel, y.to(y_ptr.dtype.element_ty), mask=in_channel)
    tl.store(ht_ptr + state, h, mask=mask_dn)
    if SUM_DT:
        tl.store(dt_sum_ptr + piece * D + channel, dt_sum, mask=in_channel)


@triton.jit(do_not_specialize=["T"])
def _selective_bwd_kernel(
    u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, z_ptr, bias_ptr, hs_ptr, dy_ptr, dht_ptr,
    du_ptr, ddt_ptr, dz_ptr, da_ptr, db_ptr, dc_ptr, dd_ptr, dbias_ptr, dh0_ptr, scratch_ptr,
    T, D, G, N,
    BT: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_DHT: tl.constexpr, REVERSE: tl.constexpr,
    PREFETCH: tl.constexpr, REPLAY_UNROLL: tl.constexpr, WALK_UNROLL: tl.constexpr, EVEN: tl.constexpr,
):  # fmt: skip
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    n_blocks = tl.num_programs(0)
    offs_d, offs_n, mask_d, mask_n, mask_dn, group, state = _channel_block(pid_d, pid_b, D, G, N, BD, BN)
    if EVEN:  # BT divides T, N is BN and BD divides D: no load or store needs a mask
        mask_d = tl.full([BD], 1, dtype=tl.int1)
        mask_n = tl.full([BN], 1, dtype=tl.int1)
        mask_dn = mask_d[:, None] & mask_n[None, :]
    A2 = tl.load(a_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32) * LOG2E
    skip = _load_channels(d_ptr, offs_d, mask_d, HAS_D)
    bias = _load_channels(bias_ptr, offs_d, mask_d, HAS_BIAS)
    dh = tl.zeros([BD, BN], dtype=tl.float32)
    if HAS_DHT:
        dh = tl.load(dht_ptr + state, mask=mask_dn, other=0.0).to(tl.float32)
    grad_a = tl.zeros([BD, BN], dtype=tl.float32)
    grad_skip = tl.zeros([BD], dtype=tl.float32)
    grad_bias = tl.zeros([BD], dtype=tl.float32)
    n_tiles = tl.cdiv(T, BT)
    checkpoints = hs_ptr + pid_b * n_tiles * D * N + (state - pid_b * D * N)
    scratch = scratch_ptr + (pid_b * n_blocks + pid_d) * BT * BD * BN
    scratch += tl.arange(0, BD)[:, None] * BN + offs_n[None, :]
    for k_back in range(0, n_tiles):
        k = n_tiles - 1 - k_back
        h_in = tl.load(checkpoints + k * D * N, mask=mask_dn, other=0.0)
        h = h_in
        if PREFETCH:
            first = k * BT
            in_first = _inside(first, T, EVEN)
            raw_next, u_next, b_next, _, _ = _load_step(
                dt_ptr, u_ptr, b_ptr, c_ptr, z_ptr, _row(pid_b * T, T, first, REVERSE), G, group, N, D, offs_d,
                offs_n, mask_d & in_first, mask_n & in_first, False, False,
            )  # fmt: skip
        for j in tl.range(0, BT, loop_unroll_factor=REPLAY_UNROLL):  # replay the tile into the scratch rows
            i = k * BT + j
            valid = _inside(i, T, EVEN)
            if PREFETCH:  # this step's loads were issued during the step before; issue the next step's
                raw, u, b = raw_next, u_next, b_next
                later = (j + 1 < BT) & _inside(i + 1, T, EVEN)
                raw_next, u_next, b_next, _, _ = _load_step(
                    dt_ptr, u_ptr, b_ptr, c_ptr, z_ptr, _row(pid_b * T, T, i + 1, REVERSE), G, group, N, D, offs_d,
                    offs_n, mask_d & later, mask_n & later, False, False,
                )  # fmt: skip
            else:
                raw, u, b, _, _ = _load_step(
                    dt_ptr, u_ptr, b_ptr, c_ptr, z_ptr, _row(pid_b * T, T, i, REVERSE), G, group, N, D, offs_d,
                    offs_n, mask_d & valid, mask_n & valid, False, False,
                )  # fmt: skip
            step = _discretised(raw, bias, mask_d & valid, HAS_BIAS, SOFTPLUS)
            h = tl.exp2(step[:, None] * A2) * h + (step * u)[:, None] * b[None, :]
            tl.store(scratch + j * BD * BN, h)
        tl.debug_barrier()
        h = tl.load(scratch + (BT - 1) * BD * BN)
        if PREFETCH:
            last = k * BT + BT - 1
            in_last = _inside(last, T, EVEN)
            raw_next, u_next, dy_next, z_next, b_next, c_next, before_next = _walk_loads(
                dt_ptr, u_ptr, b_ptr, c_ptr, dy_ptr, z_ptr, scratch, h_in, _row(pid_b * T, T, last, REVERSE), BT - 1,
                G, group, N, D, offs_d, offs_n, mask_d & in_last, mask_n & in_last, BD, BN, HAS_Z,
            )  # fmt: skip
        for j_back in tl.range(0, BT, loop_unroll_factor=WALK_UNROLL):  # walk them back, carrying each entering state
            j = BT - 1 - j_back
            i = k * BT + j
            valid = _inside(i, T, EVEN)
            m_d, m_n = mask_d & valid, mask_n & valid
            row = _row(pid_b * T, T, i, REVERSE)
            if PREFETCH:  # this step's loads were issued during the step after it; issue the step before's
                raw, u, dy, z, b, c, before = raw_next, u_next, dy_next, z_next, b_next, c_next, before_next
                earlier = (j > 0) & _inside(i - 1, T, EVEN)
                raw_next, u_next, dy_next, z_next, b_next, c_next, before_next = _walk_loads(
                    dt_ptr, u_ptr, b_ptr, c_ptr, dy_ptr, z_ptr, scratch, h_in, _row(pid_b * T, T, i - 1, REVERSE),
                    j - 1, G, group, N, D, offs_d, offs_n, mask_d & earlier, mask_n & earlier, BD, BN, HAS_Z,
                )  # fmt: skip
            else:
                raw, u, dy, z, b, c, before = _walk_loads(
                    dt_ptr, u_ptr, b_ptr, c_ptr, dy_ptr, z_ptr, scratch, h_in, row, j, G, group, N, D, offs_d,
                    offs_n, m_d, m_n, BD, BN, HAS_Z,
                )  # fmt: skip
            raw = _discretised(raw, bias, m_d, HAS_BIAS, False)  # plus the bias: softplus's argument
            step = _discretised(raw, bias, m_d, False, SOFTPLUS)
            if HAS_Z:
                gate = tl.sigmoid(z)
                y = tl.sum(h * c[None, :], axis=1) + skip * u
                tl.store(
                    dz_ptr + row * D + offs_d,
                    (dy * y * gate * (1.0 + z * (1.0 - gate))).to(dz_ptr.dtype.element_ty),
                    mask=m_d,
                )
                dy = dy * z * gate
            dh += dy[:, None] * c[None, :]
            decay = tl.exp2(step[:, None] * A2)
            dh_b = tl.sum(dh * b[None, :], axis=1)
            du = dh_b * step + skip * dy
            carried = dh * decay * before  # dh's share through the decay: gives dA and dt's decay term
            dstep = tl.sum(carried * A2, axis=1) * LN2 + dh_b * u
            if SOFTPLUS:
                dstep = dstep * tl.sigmoid(raw)
            dstep = tl.where(m_d, dstep, 0.0)
            tl.store(du_ptr + row * D + offs_d, du.to(du_ptr.dtype.element_ty), mask=m_d)
            tl.store(ddt_ptr + row * D + offs_d, dstep.to(ddt_ptr.dtype.element_ty), mask=m_d)
            grad_a += carried * step[:, None]
            grad_skip += dy * u
            grad_bias += dstep
            offs_part = (row * n_blocks + pid_d) * N + offs_n
            tl.store(db_ptr + offs_part, tl.sum(dh * (step * u)[:, None], axis=0), mask=m_n)
            tl.store(dc_ptr + offs_part, tl.sum(h * dy[:, None], axis=0), mask=m_n)
            dh = decay * dh
            h = before
        tl.debug_barrier()
    tl.store(dh0_ptr + state, dh, mask=mask_dn)
    tl.store(da_ptr + state, grad_a, mask=mask_dn)
    tl.store(dd_ptr + pid_b * D + offs_d, grad_skip, mask=mask_d)
    tl.store(dbias_ptr + pid_b * D + offs_d, grad_bias, mask=mask_d)


def block_channels(channels: int, groups: int, largest: int = 32) -> int:
    """Channels per program: the largest power of two up to ``largest`` dividing ``D / G``, so a block stays in a
    group."""
    per_group = channels // groups
    return max(bs for bs in (1, 2, 4, 8, 16, 32, 64) if bs <= largest and per_group % bs == 0)


def launch_config(
    channels: int, groups: int, state_size: int, direction: str = "fwd", saves_states: bool = False
) -> dict:
    """The launch of ``direction``: ``"fwd"`` (checkpointing the states if it ``saves_states``), ``"bwd"``, or
    ``"pieces"`` (the time split's forward passes, ``time_split.py``).

    The step-loop kernels (N > 1, and the pieces at every N): ``BD`` channels per program (``block_channels``: up
    to 32), ``BT`` steps per checkpointed tile (the same both ways), ``BN >= N`` states, one warp per program, and
    ``PREFETCH`` (each step's loads issued during the step before) in the backward, in a forward that
    ``saves_states`` only at ``N <= PREFETCH_STATES``, and in every other forward. From the H100 runs at LION's
    size (N = 16, ``results/selective_scan_v2_5_*``): the backward with 32 channels and the prefetch took 58.4 ms
    against 76.8 with 8 channels and none; its tiles of 8 steps took 47.0 (16: 54.4, 4: 48.7), whose replayed
    states stay in L2; the prefetch cut the forward that saves nothing 10.8 -> 8.6 ms and slowed the one that saves
    checkpoints 10.0 -> 11.7. Tiles of 8 steps store a float32 checkpoint of ``N / 8`` values per channel and step
    (two bytes a state element) for the backward; 32 steps at 1 < N <= 4. ``REPLAY_UNROLL`` and ``WALK_UNROLL``
    unroll the backward's two step loops, ``UNROLL`` the forward's: at N >= 16 the replay and the forward that
    saves nothing 2x, so that half their steps do not wait on the prefetched loads through loop-carried copies
    (session 17 at LION's size: the backward 47.4 -> 43.9 ms, 4x and 8x 57-58; that forward 8.66 -> 8.36, the
    checkpointing one with the prefetch and 2x 10.8 -> 12.2); the walk-back rolled (2x spills: slower). The backward
    takes ``EVEN`` (no masks) from its launch. benchmarks/NOTES.md has every run.

    At N = 1 (``single_state``; 0 in an override runs the step loop) the forward and the backward are
    ``single_state.py``'s tile kernels: a checkpoint every ``BT`` = 4 steps, the forward scanning tiles of ``TILE``
    = 2; the backward 64 channels a program in two warps (80 registers, 25 warps an SM), the forward that
    checkpoints 32 in one warp, the one that does not 64 in one warp (``block_channels`` up to 64). The fastest
    timed on the H100 at VMamba's routes (session 16, ``results/selective_scan_v3_session16_*``): forward+backward
    10.05 ms (the memory floor 5.63; tiles of 2 steps and 32 channels everywhere 11.36), forward 2.90 (3.23)."""
    block_n = triton.next_power_of_2(state_size)
    block_d = block_channels(channels, groups)
    warps = max(1, min(4, block_d * block_n // 512))
    prefetch = direction == "bwd" or not saves_states or block_n <= PREFETCH_STATES
    block_t = 8 if block_n >= 16 else 32
    cfg = {"BD": block_d, "BT": block_t, "BN": block_n, "num_warps": warps, "PREFETCH": prefetch}
    if direction == "bwd":
        cfg |= {"REPLAY_UNROLL": 2 if block_n >= 16 else 1, "WALK_UNROLL": 1}
    else:
        cfg["UNROLL"] = 2 if direction == "fwd" and not saves_states and block_n >= 16 else 1
    if block_n > 1 or direction == "pieces":
        return cfg
    wide = direction == "bwd" or not saves_states
    block_d = block_channels(channels, groups, 64 if wide else 32)
    tiles = {"BD": block_d, "BT": 4, "num_warps": max(1, block_d // 32) if direction == "bwd" else 1}
    return cfg | tiles | {"single_state": True} | ({} if direction == "bwd" else {"TILE": 2})


def _input_flags(D, z, dt_bias, dt_softplus: bool, reverse: bool) -> dict:
    """The constants every selective kernel takes from its optional inputs and options."""
    return dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=dt_softplus,
                REVERSE=reverse)  # fmt: skip


def step_loop(cfg: dict) -> dict:
    """``cfg`` as the step-loop kernels of this file take it (without the N = 1 kernels' keys)."""
    return {key: value for key, value in cfg.items() if key not in ("single_state", "TILE")}


def selective_scan_triton_fwd(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, reverse, save_states, config=None
):
    """Forward launch on contiguous inputs. Returns ``y`` (``u``'s dtype), the final state ``[B, D, N]`` float32
    and, if ``save_states``, the checkpoints ``[B, n_tiles, D, N]`` (else None). ``config`` overrides
    ``launch_config`` (the benchmark's sweep); the backward must get the same ``BT``."""
    batch, steps, channels = u.shape
    groups, state_size = B.shape[2:]
    cfg = config or launch_config(channels, groups, state_size, "fwd", save_states)
    y = torch.empty_like(u)
    final_state = u.new_empty((batch, channels, state_size), dtype=torch.float32)
    checkpoints = None
    if save_states:
        checkpoints = u.new_empty((batch, triton.cdiv(steps, cfg["BT"]), channels, state_size), dtype=torch.float32)
    tensors = (u, dt, A, B, C, D, z, dt_bias, initial_state, y, final_state, checkpoints)
    if cfg.get("single_state"):
        from .single_state import _selective_fwd_single_state_kernel, launch_single_state

        flags = _input_flags(D, z, dt_bias, dt_softplus, reverse) | dict(
            HAS_H0=initial_state is not None, SAVE_STATES=save_states, TILE=cfg["TILE"]
        )
        if cfg["BT"] % cfg["TILE"]:
            raise ValueError(f"the forward's tiles of {cfg['TILE']} steps must divide its checkpoints' {cfg['BT']}")
        launch_single_state(_selective_fwd_single_state_kernel, tensors, steps, flags, cfg)
    else:
        _launch_fwd(
            (*tensors, None), steps, dt_softplus, reverse, cfg, SAVE_STATES=save_states, WRITE_Y=True, SUM_DT=False
        )
    return y, final_state, checkpoints


def selective_scan_triton_pieces(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_states, reverse, piece_len, first_pass
):
    """The forward over ``S = ceil(T / piece_len)`` time pieces of every sequence side by side, each from its own
    state (``time_split.py``). ``initial_states [B S, D, N]`` float32 or None (zeros). The ``first_pass`` writes no
    ``y`` and sums each piece's ``dt`` (after bias and softplus), ignoring ``D`` and ``z``; the second writes
    ``y``. Returns ``y`` (None in the first pass), the states after each piece ``[B S, D, N]`` float32 and the
    ``dt`` sums ``[B S, D]`` float32 (None in the second pass)."""
    batch, steps, channels = u.shape
    groups, state_size = B.shape[2:]
    pieces = triton.cdiv(steps, piece_len)
    y = None if first_pass else torch.empty_like(u)
    final_states = u.new_empty((batch * pieces, channels, state_size), dtype=torch.float32)
    dt_sums = u.new_empty((batch * pieces, channels), dtype=torch.float32) if first_pass else None
    if first_pass:
        D = z = None
    _launch_fwd(
        (u, dt, A, B, C, D, z, dt_bias, initial_states, y, final_states, None, dt_sums), piece_len, dt_softplus,
        reverse, launch_config(channels, groups, state_size, "pieces"), SAVE_STATES=False, WRITE_Y=not first_pass,
        SUM_DT=first_pass,
    )  # fmt: skip
    return y, final_states, dt_sums


def _launch_fwd(tensors, piece_len, dt_softplus, reverse, cfg, **flags):
    """``_selective_fwd_kernel`` over ``tensors`` (its pointer arguments, None where absent): one program per
    block of channels and time piece of ``piece_len`` steps of each sequence."""
    u, _, _, B, _, D, z, dt_bias, initial_state, *_ = tensors
    batch, steps, channels = u.shape
    groups, state_size = B.shape[2:]
    grid = (triton.cdiv(channels, cfg["BD"]), batch * triton.cdiv(steps, piece_len))
    _selective_fwd_kernel[grid](
        *tensors, steps, piece_len, channels, groups, state_size, **step_loop(cfg),
        **_input_flags(D, z, dt_bias, dt_softplus, reverse), HAS_H0=initial_state is not None, **flags,
    )  # fmt: skip


def selective_scan_triton_bwd(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, checkpoints, grad_y, grad_final, reverse, config=None
):
    """Backward launch. Returns the gradients of ``(u, dt, A, B, C, D, z, dt_bias, initial_state)``, each None
    where that input was None (the initial state's gradient is always returned)."""
    batch, steps, channels = u.shape
    groups, state_size = B.shape[2:]
    cfg = config or launch_config(channels, groups, state_size, "bwd")
    n_blocks = triton.cdiv(channels, cfg["BD"])
    du, ddt = torch.empty_like(u), torch.empty_like(dt)
    dz = torch.empty_like(z) if z is not None else None
    da = torch.empty(batch, channels, state_size, device=u.device, dtype=torch.float32)
    db_blocks = torch.empty(batch, steps, n_blocks, state_size, device=u.device, dtype=torch.float32)
    dc_blocks = torch.empty_like(db_blocks)
    dd = torch.empty(batch, channels, device=u.device, dtype=torch.float32)
    dbias = torch.empty_like(dd)
    dh0 = torch.empty(batch, channels, state_size, device=u.device, dtype=torch.float32)
    tensors = (
        u, dt, A, B, C, D, z, dt_bias, checkpoints, grad_y, grad_final, du, ddt, dz, da, db_blocks, dc_blocks, dd,
        dbias, dh0,
    )  # fmt: skip
    flags = _input_flags(D, z, dt_bias, dt_softplus, reverse) | {"HAS_DHT": grad_final is not None}
    if cfg.get("single_state"):
        from .single_state import _selective_bwd_single_state_kernel, launch_single_state

        launch_single_state(_selective_bwd_single_state_kernel, tensors, steps, flags, cfg)
    else:
        scratch = u.new_empty(batch * n_blocks * cfg["BT"] * cfg["BD"] * cfg["BN"], dtype=torch.float32)
        _selective_bwd_kernel[(n_blocks, batch)](
            *tensors, scratch, steps, channels, groups, state_size, **step_loop(cfg), **flags,
            EVEN=steps % cfg["BT"] == 0 and cfg["BN"] == state_size and channels % cfg["BD"] == 0,
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
