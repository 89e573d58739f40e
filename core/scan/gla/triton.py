"""The Triton face of ``chunk_gla``: chunked forward and backward kernels, read in place in ``[B, T, H, *]``.

Time is cut into chunks of ``BT`` steps, visited in *processing order*: position ``p`` is time ``t = p`` or, with
``reverse``, ``t = T - 1 - p``. Every kernel maps positions to times when it forms its pointers, so a reverse scan
reads and writes the tensors in place (no flipped copies) and its intra-chunk mask, causal in positions, is
anti-causal in time. Within a chunk ``G`` is the inclusive cumulative log gate (``[BT, K]`` per key, one column per
head for a scalar gate, which loads as a broadcast row), ``gl`` its last row and ``S`` the state entering the chunk:

    o_i   = scale * (q_i * exp(G_i)) S + scale * sum_{j <= i} sum_k q_ik k_jk exp(G_ik - G_jk) v_j
    S'    = exp(gl) * S + sum_j (k_j * exp(gl - G_j))^T v_j

Kernels (grid in brackets):

1. ``_cumsum_kernel`` [chunks, B*H]: ``G`` in float32, chunk-local, in the inputs' layout, stored in base 2
   (``G log2 e``), so each ``exp`` below is one ``exp2`` without a multiply.
2. ``_fwd_h_kernel`` [K blocks, V blocks, B*H]: the states entering every chunk, ``h [B, NT, H, K, V]``
   (bfloat16 in a bfloat16 forward, float32 otherwise: ``forward_state_dtype``), and the final state; a
   sequential loop over chunks.
3. ``_fwd_a_kernel`` [sub-chunks, chunks, B*H]: the intra-chunk scores ``A [B, T, H, BT]`` (float32; below).
   ``_fwd_o_kernel`` [V blocks, chunks, B*H]: ``o = scale * ((q * exp(G)) S + A v)``, two dense dots a chunk.
4. ``_bwd_dh_kernel`` [K blocks, V blocks, B*H]: ``dS`` leaving every chunk (``dh``), in reverse, and ``dh0``:
   ``dS <- exp(gl) * dS' + scale * sum_i (q_i * exp(G_i))^T do_i``.
5. ``_bwd_dv_kernel`` [V blocks, chunks, B*H]: ``dv = scale * A^T do + (k exp(gl - G)) dS'``, ``A`` the forward's
   or recomputed by ``_fwd_a_kernel`` (below).
6. ``_bwd_da_kernel`` [chunks, B*H]: ``dA = do v^T`` ``[B, T, H, BT]``, at and below the diagonal, one dense dot.
7. ``_bwd_dqk_intra_kernel`` [K blocks * sub-chunks, chunks, B*H]: the intra-chunk parts of ``dq`` and ``dk`` from
   ``dA``, float32. ``_bwd_dqkg_kernel`` [K blocks, chunks, B*H]: adds the inter-chunk parts (dense dots against
   ``S`` and ``dS'``) and forms the per-key gate gradient ``dg``.

Saved for the backward: the inputs, and ``A`` where it takes no more memory than ``q`` (``keeps_scores``: ``BT``
float32 scores against ``K`` input values a token and head, so at K = 128 in 16-bit, as fla does); ``G`` and ``h``
are recomputed (kernels 1 and 2), and ``A`` too otherwise (kernel 3).

Variable-length batches (``cu_seqlens``, ``B = 1``) run in the same launches: the chunk axis of the per-chunk
kernels then numbers every chunk of every sequence (``chunk_indices`` gives each one's sequence and place), the
sequential kernels run one program per sequence and head, and each program reads its sequence's bounds, so a
position's row is ``bos + t`` instead of ``b T + t`` and ``h`` holds each sequence's chunks back to back
(``ChunkGrid``). Empty sequences have no chunks: their final state is their initial state.

Numerical safety (the anchor scheme of ``chunked.py``): every exponential has an argument <= 0 for log gates <= 0.
A chunk is cut into sub-chunks of ``BC`` steps. Scores between a query sub-chunk ``I`` and an earlier key
sub-chunk ``J`` split the decay at an anchor step ``a`` between them, ``exp(G_i - G_a) * exp(G_a - G_j)``, both
factors <= 1, folded into the operands of one ``tl.dot``; a diagonal block forms ``exp(G_i - G_j)`` elementwise,
one key (or query) row at a time, clamped at 0 above the diagonal before the exponential. A scalar gate needs no
anchor: its blocks are ``(q_i . k_j) exp(G_i - G_j)``, a ``tl.dot`` scaled by a ``[BC, BC]`` decay.

The gate gradient: with ``B_t`` the cumulative log gate over the whole sequence, ``q_t`` and ``k_t`` only ever
appear as ``q_t exp(B_t)`` and ``k_t exp(-B_t)`` (and ``exp(B_T)`` scales the final state), so
``dL/dB_t = q_t dq_t - k_t dk_t`` (+ ``sum_v dS_T * S_T`` at the last step) and ``dg_u = sum_{t >= u} dL/dB_t``.
Chunk by chunk the later chunks' share is ``sum_v dS' * S'`` at the chunk's end (``S'`` the state leaving it), so
``dg`` is a reverse cumulative sum within the chunk plus that row. Expanding ``S'`` by the update above turns the
row into ``exp(gl) sum_v dS' * S + sum_j k_j dk_j`` with ``dk_j = (v_j dS'^T) exp(gl - G_j)``, the inter-chunk part
of ``dk``: the kernel that forms ``dg`` reads only the state entering the chunk.
A scalar gate's gradient is the per-key one summed over keys (the wrapper reduces; a fixed gate's view sums the rest).

Arithmetic and carried states are float32; ``tl.dot`` runs in IEEE float32 for float32 inputs and TF32 for 16-bit
ones, except the dots of ``_fwd_o_kernel``, ``_bwd_dv_kernel`` and ``_bwd_dqkg_kernel`` on bfloat16 inputs, which
take bfloat16 operands (``dot_dtypes``, as fla's do).
"""

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .op import chunk_gla_fwd

LOG2E = tl.constexpr(1.4426950408889634)  # G is kept in base 2 (G log2 e), so every exp(.) is one ex2

# Chunk, sub-chunk and tile sizes; tests patch ``launch_config`` to small tiles.
CHUNK = 64
SUBCHUNK = 16


def launch_config(key_dim: int, value_dim: int) -> dict:
    """Chunk ``BT``, sub-chunk ``BC``, the key and value tiles ``BK``, ``BV`` (powers of two, masked at the edges)
    and ``num_warps``. Kernels may differ, each entry defaulting to the common one when absent: the output-shaped
    kernels (``o`` and ``dv``) take the value tile ``BV_O`` (up to 128: each value tile re-reads the key-side inputs
    and ``A``) and ``WARPS_O`` (8 hold ``[BT, 128]`` tiles without spilling); the whole-chunk dq/dk/dg kernel
    ``WARPS_DQKG`` (8: 4 spill 1.6 KB a thread); the scores and intra-chunk dq/dk kernels ``WARPS_A`` and
    ``WARPS_INTRA``; the two sequential state kernels ``WARPS_H``, and narrower tiles where their programs would be
    fewer than ``STATE_PROGRAMS`` (``state_tiles``); both dq/dk kernels the key tile ``BK_DQK``. A
    kernel's loops pipeline their loads over Triton's default stages unless a ``STAGES_*`` entry of the same
    suffix sets them (``kernel_launch``): the scores and both dq/dk kernels run one stage (on the H100 the scores
    kernel took 1.13 ms at one stage against 2.12 at the default three, and the dq/dk pair 0.15 ms less)."""
    return {
        "BT": CHUNK,
        "BC": SUBCHUNK,
        "BK": min(64, max(16, triton.next_power_of_2(key_dim))),
        "BV": min(64, max(16, triton.next_power_of_2(value_dim))),
        "BV_O": min(128, max(16, triton.next_power_of_2(value_dim))),
        "num_warps": 4,
        "WARPS_O": 8,
        "WARPS_DQKG": 8,
        "STAGES_A": 1,
        "STAGES_INTRA": 1,
        "STAGES_DQKG": 1,
        "STATE_PROGRAMS": 128,
    }


def state_tiles(cfg: dict, key_dim: int, value_dim: int, walks: int) -> tuple[int, int]:
    """The key and value tiles of the sequential state kernels (``fwd_h``, ``dh``; ``walks`` = sequences x heads,
    each walked over its chunks by ``K / BK x V / BV`` programs): ``BK`` and ``BV`` halved together, to no less than
    16, while fewer than ``STATE_PROGRAMS`` programs would walk. On the H100 at B = 1, T = 32768, H = 16 (64 programs
    at 64 x 64) the two kernels took 2.06 ms (two ``fwd_h`` calls) and 1.14 ms at 64 x 64 against 1.30 and 0.62 at
    32 x 32 (``results/chunk_gla_v5_state_tiles_T32768_*``)."""
    block_k, block_v = cfg["BK"], cfg["BV"]
    while min(block_k, block_v) > 16 and (
        triton.cdiv(key_dim, block_k) * triton.cdiv(value_dim, block_v) * walks < cfg.get("STATE_PROGRAMS", 0)
    ):
        block_k, block_v = block_k // 2, block_v // 2
    return block_k, block_v


def forward_state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the forward's chunk states ``h``: bfloat16 for bfloat16 inputs (half the bytes of the largest
    stream, as fla keeps them), float32 otherwise (float16's range is too short for a state). The states are
    carried in float32 and rounded only where stored; the backward recomputes them in float32."""
    return torch.bfloat16 if dtype == torch.bfloat16 else torch.float32


def dot_dtypes(dtype: torch.dtype, device: torch.device) -> tuple[tl.dtype, tl.dtype]:
    """``(ROUNDED, OPERAND)`` of the dense dots against states (``_fwd_o_kernel``, ``_bwd_dv_kernel``,
    ``_bwd_dqkg_kernel``) for inputs of ``dtype``: bfloat16 inputs round the operands to bfloat16, as fla does,
    others keep float32. On CUDA the operands enter as the rounded dtype; the interpreter (CPU tensors) multiplies
    bfloat16 operands of ``tl.dot`` wrongly (it reads their bits as integers), so there they enter as float32: the
    same products, each exact in float32."""
    rounded = tl.bfloat16 if dtype == torch.bfloat16 else tl.float32
    return rounded, rounded if device.type == "cuda" else tl.float32


def keeps_scores(q: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether the forward's intra-chunk scores ``A`` are kept for the backward instead of recomputed: when their
    ``BT`` float32 values a token and head take no more memory than ``q``'s ``K`` (module docstring)."""
    return launch_config(q.shape[-1], v.shape[-1])["BT"] * 4 <= q.shape[-1] * q.element_size()


@triton.jit
def _positions(n, start, T, BT: tl.constexpr, ROWS: tl.constexpr, REVERSE: tl.constexpr):
    """Times and validity of ``ROWS`` rows starting at row ``start`` of chunk ``n`` (processing order)."""
    p = n * BT + start + tl.arange(0, ROWS)
    if REVERSE:
        t = T - 1 - p
    else:
        t = p
    return t.to(tl.int64), p < T


@triton.jit
def _time(p, T, REVERSE: tl.constexpr):
    """The time of processing position ``p``."""
    if REVERSE:
        return (T - 1 - p).to(tl.int64)
    return p.to(tl.int64)


@triton.jit
def _sequence_span(b, T, NT, cu_ptr, offs_ptr, BT: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Sequence ``b``'s first row ``bos`` on the time axis (a head's rows are ``bos + t``), its length, its number
    of chunks and the index of its first chunk in ``h [chunks, H, K, V]``: ``b T``, ``T``, ``NT`` and ``b NT`` in a
    dense batch; from ``cu_seqlens`` and the chunk offsets in a varlen one (``B = 1``)."""
    if IS_VARLEN:
        bos = tl.load(cu_ptr + b).to(tl.int64)
        length = (tl.load(cu_ptr + b + 1) - bos).to(tl.int32)
        return bos, length, tl.cdiv(length, BT), tl.load(offs_ptr + b).to(tl.int64)
    return b * T, T, NT, b * NT


@triton.jit
def _program_chunk(pid, bh, H, T, NT, cu_ptr, chunk_ptr, offs_ptr, BT: tl.constexpr, IS_VARLEN: tl.constexpr):
    """A per-chunk program's ``(b, h, n, bos, length, n_chunks, c0)``: its sequence, head and chunk within the
    sequence, then ``_sequence_span``. ``pid`` numbers the chunks (of one sequence when dense, of all the sequences
    back to back when varlen, read from ``chunk_indices [chunks, 2]``) and ``bh`` the heads (``b H + h`` when
    dense, ``h`` when varlen)."""
    if IS_VARLEN:
        b = tl.load(chunk_ptr + 2 * pid).to(tl.int64)
        n = tl.load(chunk_ptr + 2 * pid + 1)
    else:
        b = bh // H
        n = pid
    bos, length, n_chunks, c0 = _sequence_span(b, T, NT, cu_ptr, offs_ptr, BT, IS_VARLEN)
    return b, bh % H, n, bos, length, n_chunks, c0


@triton.jit
def _load_rows(ptr, base, t, valid, cols, mask_c, stride_t):
    """A ``[rows, cols]`` tile of a ``[B, T, H, W]`` tensor in float32 (0 outside), ``base`` at ``(b, 0, h, 0)``."""
    offs = base + t[:, None] * stride_t + cols[None, :]
    return tl.load(ptr + offs, mask=valid[:, None] & mask_c[None, :], other=0.0).to(tl.float32)


@triton.jit
def _store_rows(ptr, base, t, valid, cols, mask_c, stride_t, value):
    offs = base + t[:, None] * stride_t + cols[None, :]
    tl.store(ptr + offs, value.to(ptr.dtype.element_ty), mask=valid[:, None] & mask_c[None, :])


@triton.jit
def _gate_cols(cols, PER_KEY: tl.constexpr):
    """Column offsets into ``G``: the key's own column, or column 0 of a scalar gate for every key."""
    if PER_KEY:
        return cols
    return cols * 0


@triton.jit
def _gate_row(gc_ptr, base_g, p, T, cols, mask_c, stride_g, PER_KEY: tl.constexpr, REVERSE: tl.constexpr):
    """``G`` at processing position ``p`` as a ``[BK]`` vector: 0 before the start, the last step's past the end
    (so an anchor beyond a partial chunk stays a step at or after every valid key)."""
    p = tl.minimum(p, T - 1)
    offs = base_g + _time(p, T, REVERSE) * stride_g + _gate_cols(cols, PER_KEY)
    return tl.load(gc_ptr + offs, mask=mask_c & (p >= 0), other=0.0)


@triton.jit
def _masked_exp(x, valid):
    """``exp(x)`` on valid rows, 0 on the others (whatever ``x`` holds there)."""
    return tl.where(valid[:, None], tl.exp2(x), 0.0)


@triton.jit(do_not_specialize=["T"])
def _cumsum_kernel(
    g_ptr, gc_ptr, T, H, KG, NT, cu_ptr, chunk_ptr, offs_ptr,
    BT: tl.constexpr, BK: tl.constexpr, REVERSE: tl.constexpr, IS_VARLEN: tl.constexpr,
):  # fmt: skip
    pid, bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    _, h, n, bos, T, _, _ = _program_chunk(pid, bh, H, T, NT, cu_ptr, chunk_ptr, offs_ptr, BT, IS_VARLEN)
    base = (bos * H + h) * KG
    t, valid = _positions(n, 0, T, BT, BT, REVERSE)
    for c0 in range(0, KG, BK):
        cols = c0 + tl.arange(0, BK)
        mask_c = cols < KG
        g = _load_rows(g_ptr, base, t, valid, cols, mask_c, H * KG)
        _store_rows(gc_ptr, base, t, valid, cols, mask_c, H * KG, tl.cumsum(g, axis=0) * LOG2E)


@triton.jit
def _state_tile(kb, vb, K, V, BK: tl.constexpr, BV: tl.constexpr):
    """Key and value columns of tile ``(kb, vb)`` of a ``[K, V]`` state, their masks, and the tile's offsets
    within one state."""
    cols_k = kb * BK + tl.arange(0, BK)
    cols_v = vb * BV + tl.arange(0, BV)
    mask_k, mask_v = cols_k < K, cols_v < V
    return cols_k, cols_v, mask_k, mask_v, mask_k[:, None] & mask_v[None, :], cols_k[:, None] * V + cols_v[None, :]


@triton.jit
def _load_state(ptr, offs, mask, PRESENT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """A ``[BK, BV]`` float32 state tile, zeros when not ``PRESENT``."""
    state = tl.zeros([BK, BV], dtype=tl.float32)
    if PRESENT:
        state = tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)
    return state


@triton.jit(do_not_specialize=["T"])
def _fwd_h_kernel(
    k_ptr, v_ptr, gc_ptr, h0_ptr, h_ptr, ht_ptr, T, H, K, V, KG, NT, cu_ptr, offs_ptr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PER_KEY: tl.constexpr, HAS_H0: tl.constexpr,
    REVERSE: tl.constexpr, PRECISION: tl.constexpr, IS_VARLEN: tl.constexpr,
):  # fmt: skip
    kb, vb, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    b, h = bh // H, bh % H
    bos, T, NT, c0 = _sequence_span(b, T, NT, cu_ptr, offs_ptr, BT, IS_VARLEN)
    cols_k, cols_v, mask_k, mask_v, mask_kv, state_offs = _state_tile(kb, vb, K, V, BK, BV)
    state = _load_state(h0_ptr, bh * K * V + state_offs, mask_kv, HAS_H0, BK, BV)
    base_k, base_v, base_g = (bos * H + h) * K, (bos * H + h) * V, (bos * H + h) * KG
    gcols = _gate_cols(cols_k, PER_KEY)
    for n in range(0, NT):
        tl.store(h_ptr + ((c0 + n) * H + h) * K * V + state_offs, state.to(h_ptr.dtype.element_ty), mask=mask_kv)
        t, valid = _positions(n, 0, T, BT, BT, REVERSE)
        last = _gate_row(gc_ptr, base_g, tl.minimum(n * BT + BT, T) - 1, T, cols_k, mask_k, H * KG, PER_KEY, REVERSE)
        G = _load_rows(gc_ptr, base_g, t, valid, gcols, mask_k, H * KG)
        k = _load_rows(k_ptr, base_k, t, valid, cols_k, mask_k, H * K) * _masked_exp(last[None, :] - G, valid)
        v = _load_rows(v_ptr, base_v, t, valid, cols_v, mask_v, H * V)
        state = state * tl.exp2(last)[:, None] + tl.dot(tl.trans(k), v, input_precision=PRECISION)
    tl.store(ht_ptr + bh * K * V + state_offs, state, mask=mask_kv)


@triton.jit
def _chunk_scores(row0, t, valid, H, BT: tl.constexpr):
    """Offsets of a chunk's ``[BT, BT]`` block in a ``[B, T, H, BT]`` score matrix (``row0 = b T H + h``, rows at
    the times ``t``) and the mask of its valid rows at and below the diagonal."""
    cols = tl.arange(0, BT)
    return (row0 * BT + t[:, None] * H * BT + cols[None, :]), valid[:, None] & (cols[None, :] <= cols[:, None])


@triton.jit
def _scalar_decay(gc_ptr, base_g, t_i, valid_i, t_j, valid_j, stride_g, earlier):
    """``exp(G_i - G_j)`` ``[BC, BC]`` for a scalar gate (column 0 of ``G``): an ``earlier`` key block whole, the
    diagonal block (``earlier`` false) 0 above the diagonal."""
    g_i = tl.load(gc_ptr + base_g + t_i * stride_g, mask=valid_i, other=0.0)
    g_j = tl.load(gc_ptr + base_g + t_j * stride_g, mask=valid_j, other=0.0)
    rows = tl.arange(0, t_i.shape[0])
    causal = (rows[:, None] >= rows[None, :]) | earlier
    return tl.where(causal, tl.exp2(tl.minimum(g_i[:, None] - g_j[None, :], 0.0)), 0.0)


@triton.jit
def _earlier_scores(q_ptr, k_ptr, gc_ptr, base_k, base_g, n, ic, t_i, valid_i, T, H, K, BT: tl.constexpr,
                    BC: tl.constexpr, BK: tl.constexpr, REVERSE: tl.constexpr, PRECISION: tl.constexpr):  # fmt: skip
    """Per-key gates: the scores ``[BC, BT]`` of sub-chunk ``ic``'s queries against every key of the chunk before
    the sub-chunk (0 in the other columns), one ``tl.dot`` a key tile through the anchor, the step before the
    sub-chunk, so both factors ``exp(G_i - G_a)`` and ``exp(G_a - G_j)`` are at most 1."""
    t_c, valid_c = _positions(n, 0, T, BT, BT, REVERSE)
    earlier = valid_c & (tl.arange(0, BT) < ic * BC)
    scores = tl.zeros([BC, BT], dtype=tl.float32)
    for k0 in range(0, K, BK):
        cols_k = k0 + tl.arange(0, BK)
        mask_k = cols_k < K
        anchor = _gate_row(gc_ptr, base_g, n * BT + ic * BC - 1, T, cols_k, mask_k, H * K, True, REVERSE)
        G_i = _load_rows(gc_ptr, base_g, t_i, valid_i, cols_k, mask_k, H * K)
        G_c = _load_rows(gc_ptr, base_g, t_c, earlier, cols_k, mask_k, H * K)
        q_i = _load_rows(q_ptr, base_k, t_i, valid_i, cols_k, mask_k, H * K)
        k_c = _load_rows(k_ptr, base_k, t_c, earlier, cols_k, mask_k, H * K)
        q_i *= _masked_exp(G_i - anchor[None, :], valid_i)
        k_c *= _masked_exp(anchor[None, :] - G_c, earlier)
        scores += tl.dot(q_i, tl.trans(k_c), input_precision=PRECISION)
    return scores


@triton.jit
def _diagonal_scores(q_ptr, k_ptr, gc_ptr, base_k, base_g, n, ic, t_i, valid_i, T, H, K, BT: tl.constexpr,
                     BC: tl.constexpr, BK: tl.constexpr, REVERSE: tl.constexpr):  # fmt: skip
    """Per-key gates: sub-chunk ``ic``'s diagonal block ``[BC, BC]``, 0 above the diagonal, one key column at a
    time: ``sum_k q_ik k_jk exp(G_ik - G_jk)`` over a ``[BC, BK]`` tile, exponents clamped at 0 (above the
    diagonal, where the column is masked)."""
    block_cols = tl.arange(0, BC)
    scores = tl.zeros([BC, BC], dtype=tl.float32)
    for k0 in range(0, K, BK):
        cols_k = k0 + tl.arange(0, BK)
        mask_k = cols_k < K
        q_i = _load_rows(q_ptr, base_k, t_i, valid_i, cols_k, mask_k, H * K)
        G_i = _load_rows(gc_ptr, base_g, t_i, valid_i, cols_k, mask_k, H * K)
        for j in range(0, BC):
            p_j = n * BT + ic * BC + j
            t_j, on_j = _time(p_j, T, REVERSE), mask_k & (p_j < T)
            k_j = tl.load(k_ptr + base_k + t_j * H * K + cols_k, mask=on_j, other=0.0).to(tl.float32)
            G_j = tl.load(gc_ptr + base_g + t_j * H * K + cols_k, mask=on_j, other=0.0)
            column = tl.sum(q_i * k_j[None, :] * tl.exp2(tl.minimum(G_i - G_j[None, :], 0.0)), 1)
            scores += tl.where(block_cols[None, :] == j, column[:, None], 0.0)
    return tl.where(block_cols[:, None] >= block_cols[None, :], scores, 0.0)


@triton.jit(do_not_specialize=["T"])
def _fwd_a_kernel(
    q_ptr, k_ptr, gc_ptr, a_ptr, T, H, K, KG, NT, cu_ptr, chunk_ptr, offs_ptr,
    BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, PER_KEY: tl.constexpr, REVERSE: tl.constexpr,
    PRECISION: tl.constexpr, IS_VARLEN: tl.constexpr,
):  # fmt: skip
    """Row block ``ic`` of chunk ``n``'s intra-chunk scores ``A_ij = sum_k q_ik k_jk exp(G_ik - G_jk)``, ``j <= i``:
    ``A [B, T, H, BT]`` at the rows of sub-chunk ``ic`` and the columns of every key sub-chunk up to it (the
    columns past the diagonal block are not written). Per-key gates: the earlier key sub-chunks in one dot through
    an anchor (``_earlier_scores``), the diagonal block a key column at a time (``_diagonal_scores``). Scalar
    gates: a dot a key sub-chunk, scaled by ``exp(G_i - G_j)``."""
    ic, pid, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    _, h, n, bos, T, _, _ = _program_chunk(pid, bh, H, T, NT, cu_ptr, chunk_ptr, offs_ptr, BT, IS_VARLEN)
    base_k, base_g, base_a = (bos * H + h) * K, (bos * H + h) * KG, (bos * H + h) * BT
    t_i, valid_i = _positions(n, ic * BC, T, BT, BC, REVERSE)
    block_cols = tl.arange(0, BC)
    every_col = block_cols < BC
    if PER_KEY:
        if ic > 0:
            chunk_cols = tl.arange(0, BT)
            scores = _earlier_scores(
                q_ptr, k_ptr, gc_ptr, base_k, base_g, n, ic, t_i, valid_i, T, H, K, BT, BC, BK, REVERSE, PRECISION
            )
            _store_rows(a_ptr, base_a, t_i, valid_i, chunk_cols, chunk_cols < ic * BC, H * BT, scores)
        scores = _diagonal_scores(
            q_ptr, k_ptr, gc_ptr, base_k, base_g, n, ic, t_i, valid_i, T, H, K, BT, BC, BK, REVERSE
        )
        _store_rows(a_ptr, base_a, t_i, valid_i, ic * BC + block_cols, every_col, H * BT, scores)
    else:
        for jc in range(0, ic + 1):
            t_j, valid_j = _positions(n, jc * BC, T, BT, BC, REVERSE)
            scores = tl.zeros([BC, BC], dtype=tl.float32)
            for k0 in range(0, K, BK):
                cols_k = k0 + tl.arange(0, BK)
                mask_k = cols_k < K
                q_i = _load_rows(q_ptr, base_k, t_i, valid_i, cols_k, mask_k, H * K)
                k_j = _load_rows(k_ptr, base_k, t_j, valid_j, cols_k, mask_k, H * K)
                scores += tl.dot(q_i, tl.trans(k_j), input_precision=PRECISION)
            scores *= _scalar_decay(gc_ptr, base_g, t_i, valid_i, t_j, valid_j, H * KG, jc < ic)
            _store_rows(a_ptr, base_a, t_i, valid_i, jc * BC + block_cols, every_col, H * BT, scores)


@triton.jit(do_not_specialize=["T"])
def _fwd_o_kernel(
    q_ptr, v_ptr, gc_ptr, h_ptr, a_ptr, o_ptr, scale, T, H, K, V, KG, NT, cu_ptr, chunk_ptr, offs_ptr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PER_KEY: tl.constexpr, REVERSE: tl.constexpr,
    PRECISION: tl.constexpr, ROUNDED: tl.constexpr, OPERAND: tl.constexpr, IS_VARLEN: tl.constexpr,
):  # fmt: skip
    """``o = scale * ((q * exp(G)) S + A v)`` for a whole chunk and one value tile: two dense ``tl.dot`` over the
    chunk's ``BT`` rows (``A`` from ``_fwd_a_kernel``, read at and below the diagonal), their operands rounded to
    ``ROUNDED`` and entering as ``OPERAND`` (``dot_dtypes``)."""
    vb, pid, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    _, h, n, bos, T, _, c0 = _program_chunk(pid, bh, H, T, NT, cu_ptr, chunk_ptr, offs_ptr, BT, IS_VARLEN)
    cols_v = vb * BV + tl.arange(0, BV)
    mask_v = cols_v < V
    base_k, base_v, base_g = (bos * H + h) * K, (bos * H + h) * V, (bos * H + h) * KG
    state_ptr = h_ptr + ((c0 + n) * H + h) * K * V
    t, valid = _positions(n, 0, T, BT, BT, REVERSE)
    acc = tl.zeros([BT, BV], dtype=tl.float32)
    for k0 in range(0, K, BK):
        cols_k = k0 + tl.arange(0, BK)
        mask_k = cols_k < K
        q = _load_rows(q_ptr, base_k, t, valid, cols_k, mask_k, H * K)
        G = _load_rows(gc_ptr, base_g, t, valid, _gate_cols(cols_k, PER_KEY), mask_k, H * KG)
        state = tl.load(
            state_ptr + cols_k[:, None] * V + cols_v[None, :], mask=mask_k[:, None] & mask_v[None, :], other=0.0
        )
        q = (q * _masked_exp(G, valid)).to(ROUNDED).to(OPERAND)
        acc += tl.dot(q, state.to(OPERAND), input_precision=PRECISION)
    offs_a, causal = _chunk_scores(bos * H + h, t, valid, H, BT)
    scores = tl.load(a_ptr + offs_a, mask=causal, other=0.0).to(ROUNDED).to(OPERAND)
    v = _load_rows(v_ptr, base_v, t, valid, cols_v, mask_v, H * V).to(ROUNDED).to(OPERAND)
    acc += tl.dot(scores, v, input_precision=PRECISION)
    _store_rows(o_ptr, base_v, t, valid, cols_v, mask_v, H * V, acc * scale)


@triton.jit(do_not_specialize=["T"])
def _bwd_dh_kernel(
    q_ptr, do_ptr, gc_ptr, dht_ptr, dh_ptr, dh0_ptr, scale, T, H, K, V, KG, NT, cu_ptr, offs_ptr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PER_KEY: tl.constexpr, HAS_DHT: tl.constexpr,
    REVERSE: tl.constexpr, PRECISION: tl.constexpr, IS_VARLEN: tl.constexpr,
):  # fmt: skip
    kb, vb, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    b, h = bh // H, bh % H
    bos, T, NT, c0 = _sequence_span(b, T, NT, cu_ptr, offs_ptr, BT, IS_VARLEN)
    cols_k, cols_v, mask_k, mask_v, mask_kv, state_offs = _state_tile(kb, vb, K, V, BK, BV)
    grad = _load_state(dht_ptr, bh * K * V + state_offs, mask_kv, HAS_DHT, BK, BV)
    base_k, base_v, base_g = (bos * H + h) * K, (bos * H + h) * V, (bos * H + h) * KG
    gcols = _gate_cols(cols_k, PER_KEY)
    for i in range(0, NT):
        n = NT - 1 - i
        tl.store(dh_ptr + ((c0 + n) * H + h) * K * V + state_offs, grad, mask=mask_kv)
        t, valid = _positions(n, 0, T, BT, BT, REVERSE)
        last = _gate_row(gc_ptr, base_g, tl.minimum(n * BT + BT, T) - 1, T, cols_k, mask_k, H * KG, PER_KEY, REVERSE)
        G = _load_rows(gc_ptr, base_g, t, valid, gcols, mask_k, H * KG)
        q = _load_rows(q_ptr, base_k, t, valid, cols_k, mask_k, H * K) * _masked_exp(G, valid)
        do = _load_rows(do_ptr, base_v, t, valid, cols_v, mask_v, H * V)
        grad = grad * tl.exp2(last)[:, None] + scale * tl.dot(tl.trans(q), do, input_precision=PRECISION)
    tl.store(dh0_ptr + bh * K * V + state_offs, grad, mask=mask_kv)


@triton.jit(do_not_specialize=["T"])
def _bwd_dv_kernel(
    k_ptr, gc_ptr, do_ptr, dh_ptr, a_ptr, dv_ptr, scale, T, H, K, V, KG, NT, cu_ptr, chunk_ptr, offs_ptr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PER_KEY: tl.constexpr, REVERSE: tl.constexpr,
    PRECISION: tl.constexpr, ROUNDED: tl.constexpr, OPERAND: tl.constexpr, IS_VARLEN: tl.constexpr,
):  # fmt: skip
    """``dv = (k * exp(gl - G)) dS' + scale * A^T do`` for a whole chunk and one value tile, two dense ``tl.dot``
    (``A`` from ``_fwd_a_kernel``, read at and below the diagonal), operands as ``_fwd_o_kernel``'s."""
    vb, pid, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    _, h, n, bos, T, _, c0 = _program_chunk(pid, bh, H, T, NT, cu_ptr, chunk_ptr, offs_ptr, BT, IS_VARLEN)
    cols_v = vb * BV + tl.arange(0, BV)
    mask_v = cols_v < V
    base_k, base_v, base_g = (bos * H + h) * K, (bos * H + h) * V, (bos * H + h) * KG
    grad_ptr = dh_ptr + ((c0 + n) * H + h) * K * V
    t, valid = _positions(n, 0, T, BT, BT, REVERSE)
    p_last = tl.minimum(n * BT + BT, T) - 1
    acc = tl.zeros([BT, BV], dtype=tl.float32)
    for k0 in range(0, K, BK):
        cols_k = k0 + tl.arange(0, BK)
        mask_k = cols_k < K
        G = _load_rows(gc_ptr, base_g, t, valid, _gate_cols(cols_k, PER_KEY), mask_k, H * KG)
        last = _gate_row(gc_ptr, base_g, p_last, T, cols_k, mask_k, H * KG, PER_KEY, REVERSE)
        k = _load_rows(k_ptr, base_k, t, valid, cols_k, mask_k, H * K) * _masked_exp(last[None, :] - G, valid)
        grad = tl.load(
            grad_ptr + cols_k[:, None] * V + cols_v[None, :], mask=mask_k[:, None] & mask_v[None, :], other=0.0
        )
        acc += tl.dot(k.to(ROUNDED).to(OPERAND), grad.to(ROUNDED).to(OPERAND), input_precision=PRECISION)
    offs_a, causal = _chunk_scores(bos * H + h, t, valid, H, BT)
    scores = tl.load(a_ptr + offs_a, mask=causal, other=0.0).to(ROUNDED).to(OPERAND)
    do = _load_rows(do_ptr, base_v, t, valid, cols_v, mask_v, H * V).to(ROUNDED).to(OPERAND)
    acc += scale * tl.dot(tl.trans(scores), do, input_precision=PRECISION)
    _store_rows(dv_ptr, base_v, t, valid, cols_v, mask_v, H * V, acc)


@triton.jit
def _score_block(a_ptr, base_a, t_i, valid_i, col0, stride_t, BC: tl.constexpr):
    """The ``[BC, BC]`` block of a ``[B, T, H, BT]`` score matrix at the rows ``t_i`` and the columns from ``col0``
    (``base_a`` at ``(b, 0, h, 0)``), a block left of the diagonal."""
    cols = tl.arange(0, BC)
    mask = valid_i[:, None] & (cols < BC)[None, :]
    return tl.load(a_ptr + base_a + t_i[:, None] * stride_t + col0 + cols[None, :], mask=mask, other=0.0)


@triton.jit(do_not_specialize=["T"])
def _bwd_da_kernel(
    do_ptr, v_ptr, da_ptr, T, H, V, NT, cu_ptr, chunk_ptr, offs_ptr,
    BT: tl.constexpr, BV: tl.constexpr, REVERSE: tl.constexpr, PRECISION: tl.constexpr, IS_VARLEN: tl.constexpr,
):  # fmt: skip
    """``dA_ij = do_i . v_j`` for the rows and columns of chunk ``n``, one dense dot a value tile, into ``dA [B, T,
    H, BT]`` at and below the diagonal."""
    pid, bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    _, h, n, bos, T, _, _ = _program_chunk(pid, bh, H, T, NT, cu_ptr, chunk_ptr, offs_ptr, BT, IS_VARLEN)
    base_v = (bos * H + h) * V
    t, valid = _positions(n, 0, T, BT, BT, REVERSE)
    acc = tl.zeros([BT, BT], dtype=tl.float32)
    for v0 in range(0, V, BV):
        cols = v0 + tl.arange(0, BV)
        mask = cols < V
        do = _load_rows(do_ptr, base_v, t, valid, cols, mask, H * V)
        acc += tl.dot(do, tl.trans(_load_rows(v_ptr, base_v, t, valid, cols, mask, H * V)), input_precision=PRECISION)
    offs_a, causal = _chunk_scores(bos * H + h, t, valid, H, BT)
    tl.store(da_ptr + offs_a, acc, mask=causal)


@triton.jit(do_not_specialize=["T"])
def _bwd_dqk_intra_kernel(
    q_ptr, k_ptr, gc_ptr, da_ptr, dqi_ptr, dki_ptr, scale, T, H, K, KG, NT, cu_ptr, chunk_ptr, offs_ptr,
    BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, PER_KEY: tl.constexpr, REVERSE: tl.constexpr,
    PRECISION: tl.constexpr, IS_VARLEN: tl.constexpr,
):  # fmt: skip
    """The intra-chunk parts of ``dq`` and ``dk`` for sub-chunk ``ic`` and key tile ``kb`` (program axis 0 holds
    both), float32: ``dq_i = scale sum_{j <= i} dA_ij k_j exp(G_i - G_j)`` and ``dk_j = scale sum_{i >= j} dA_ij q_i
    exp(G_i - G_j)``. Earlier (later) sub-chunks: one ``tl.dot`` each through an anchor; the diagonal block: one key
    (query) row at a time, ``[BC, BK]`` products accumulated without a sum across lanes."""
    NC: tl.constexpr = BT // BC
    kb, ic = tl.program_id(0) // NC, tl.program_id(0) % NC
    pid, bh = tl.program_id(1), tl.program_id(2).to(tl.int64)
    _, h, n, bos, T, _, _ = _program_chunk(pid, bh, H, T, NT, cu_ptr, chunk_ptr, offs_ptr, BT, IS_VARLEN)
    cols_k = kb * BK + tl.arange(0, BK)
    mask_k = cols_k < K
    gcols = _gate_cols(cols_k, PER_KEY)
    base_k, base_g, base_a = (bos * H + h) * K, (bos * H + h) * KG, (bos * H + h) * BT
    t_i, valid_i = _positions(n, ic * BC, T, BT, BC, REVERSE)
    G_i = _load_rows(gc_ptr, base_g, t_i, valid_i, gcols, mask_k, H * KG)
    rows = tl.arange(0, BC)
    # dq: earlier key sub-chunks, anchored at the step before this sub-chunk, then the diagonal block.
    anchor = _gate_row(gc_ptr, base_g, n * BT + tl.maximum(ic * BC - 1, 0), T, cols_k, mask_k, H * KG, PER_KEY, REVERSE)
    dq = tl.zeros([BC, BK], dtype=tl.float32)
    for jc in range(0, ic):
        t_j, valid_j = _positions(n, jc * BC, T, BT, BC, REVERSE)
        G_j = _load_rows(gc_ptr, base_g, t_j, valid_j, gcols, mask_k, H * KG)
        k_j = _load_rows(k_ptr, base_k, t_j, valid_j, cols_k, mask_k, H * K)
        d_scores = _score_block(da_ptr, base_a, t_i, valid_i, jc * BC, H * BT, BC)
        dq += tl.dot(d_scores, k_j * _masked_exp(anchor[None, :] - G_j, valid_j), input_precision=PRECISION)
    dq *= _masked_exp(G_i - anchor[None, :], valid_i)
    for j in range(0, BC):
        p_j = n * BT + ic * BC + j
        t_j, on_j = _time(p_j, T, REVERSE), mask_k & (p_j < T)
        k_j = tl.load(k_ptr + base_k + t_j * H * K + cols_k, mask=on_j, other=0.0).to(tl.float32)
        G_j = tl.load(gc_ptr + base_g + t_j * H * KG + gcols, mask=on_j, other=0.0)
        d_col = tl.load(da_ptr + base_a + t_i * H * BT + ic * BC + j, mask=valid_i & (rows >= j), other=0.0)
        dq += d_col[:, None] * k_j[None, :] * tl.exp2(tl.minimum(G_i - G_j[None, :], 0.0))
    _store_rows(dqi_ptr, base_k, t_i, valid_i, cols_k, mask_k, H * K, dq * scale)
    # dk: later query sub-chunks, anchored at this sub-chunk's last step, then the diagonal block.
    anchor = _gate_row(gc_ptr, base_g, n * BT + ic * BC + BC - 1, T, cols_k, mask_k, H * KG, PER_KEY, REVERSE)
    dk = tl.zeros([BC, BK], dtype=tl.float32)
    for jc in range(ic + 1, NC):
        t_j, valid_j = _positions(n, jc * BC, T, BT, BC, REVERSE)
        G_j = _load_rows(gc_ptr, base_g, t_j, valid_j, gcols, mask_k, H * KG)
        q_j = _load_rows(q_ptr, base_k, t_j, valid_j, cols_k, mask_k, H * K)
        d_scores = _score_block(da_ptr, base_a, t_j, valid_j, ic * BC, H * BT, BC)
        dk += tl.dot(tl.trans(d_scores), q_j * _masked_exp(G_j - anchor[None, :], valid_j), input_precision=PRECISION)
    dk *= _masked_exp(anchor[None, :] - G_i, valid_i)
    for j in range(0, BC):
        p_j = n * BT + ic * BC + j
        t_j, on_j = _time(p_j, T, REVERSE), mask_k & (p_j < T)
        q_j = tl.load(q_ptr + base_k + t_j * H * K + cols_k, mask=on_j, other=0.0).to(tl.float32)
        G_j = tl.load(gc_ptr + base_g + t_j * H * KG + gcols, mask=on_j, other=0.0)
        d_row = tl.load(da_ptr + base_a + t_j * H * BT + ic * BC + rows, mask=(p_j < T) & (rows <= j), other=0.0)
        dk += d_row[:, None] * q_j[None, :] * tl.exp2(tl.minimum(G_j[None, :] - G_i, 0.0))
    _store_rows(dki_ptr, base_k, t_i, valid_i, cols_k, mask_k, H * K, dk * scale)


@triton.jit(do_not_specialize=["T"])
def _bwd_dqkg_kernel(
    q_ptr, k_ptr, v_ptr, gc_ptr, h_ptr, do_ptr, dh_ptr, dqi_ptr, dki_ptr, dq_ptr, dk_ptr, dg_ptr, scale, T, H, K, V,
    KG, NT, cu_ptr, chunk_ptr, offs_ptr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, PER_KEY: tl.constexpr, REVERSE: tl.constexpr,
    PRECISION: tl.constexpr, ROUNDED: tl.constexpr, OPERAND: tl.constexpr, IS_VARLEN: tl.constexpr,
):  # fmt: skip
    """``dq``, ``dk`` and ``dg`` for a whole chunk and key tile: the inter-chunk parts ``dq = scale (do S^T)
    exp(G)`` and ``dk = (v dS'^T) exp(gl - G)`` as dense dots over ``V`` (operands as ``_fwd_o_kernel``'s; the
    carry below stays float32), plus the intra-chunk parts (``dqi``,
    ``dki``); then ``dg``, the reverse cumulative sum of ``q dq - k dk`` plus the later chunks' share ``sum_v dS' *
    S'`` (module docstring: formed from ``S`` and the inter part of ``dk``)."""
    kb, pid, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    _, h, n, bos, T, _, c0 = _program_chunk(pid, bh, H, T, NT, cu_ptr, chunk_ptr, offs_ptr, BT, IS_VARLEN)
    cols_k = kb * BK + tl.arange(0, BK)
    mask_k = cols_k < K
    base_k, base_v, base_g = (bos * H + h) * K, (bos * H + h) * V, (bos * H + h) * KG
    state_ptr = h_ptr + ((c0 + n) * H + h) * K * V
    grad_ptr = dh_ptr + ((c0 + n) * H + h) * K * V
    t, valid = _positions(n, 0, T, BT, BT, REVERSE)
    dq = tl.zeros([BT, BK], dtype=tl.float32)
    dk = tl.zeros([BT, BK], dtype=tl.float32)
    carry = tl.zeros([BK], dtype=tl.float32)
    for v0 in range(0, V, BV):
        cols = v0 + tl.arange(0, BV)
        mask = cols < V
        offs = cols_k[:, None] * V + cols[None, :]
        mask_kv = mask_k[:, None] & mask[None, :]
        state = tl.load(state_ptr + offs, mask=mask_kv, other=0.0)
        grad = tl.load(grad_ptr + offs, mask=mask_kv, other=0.0)
        carry += tl.sum(state * grad, 1)
        do = _load_rows(do_ptr, base_v, t, valid, cols, mask, H * V).to(ROUNDED).to(OPERAND)
        v = _load_rows(v_ptr, base_v, t, valid, cols, mask, H * V).to(ROUNDED).to(OPERAND)
        dq += tl.dot(do, tl.trans(state.to(ROUNDED).to(OPERAND)), input_precision=PRECISION)
        dk += tl.dot(v, tl.trans(grad.to(ROUNDED).to(OPERAND)), input_precision=PRECISION)
    G = _load_rows(gc_ptr, base_g, t, valid, _gate_cols(cols_k, PER_KEY), mask_k, H * KG)
    dq = scale * dq * _masked_exp(G, valid) + _load_rows(dqi_ptr, base_k, t, valid, cols_k, mask_k, H * K)
    _store_rows(dq_ptr, base_k, t, valid, cols_k, mask_k, H * K, dq)
    part = _load_rows(q_ptr, base_k, t, valid, cols_k, mask_k, H * K) * dq
    last = _gate_row(gc_ptr, base_g, tl.minimum(n * BT + BT, T) - 1, T, cols_k, mask_k, H * KG, PER_KEY, REVERSE)
    k = _load_rows(k_ptr, base_k, t, valid, cols_k, mask_k, H * K)
    dk *= _masked_exp(last[None, :] - G, valid)
    carry = carry * tl.exp2(last) + tl.sum(k * dk, 0)
    dk += _load_rows(dki_ptr, base_k, t, valid, cols_k, mask_k, H * K)
    _store_rows(dk_ptr, base_k, t, valid, cols_k, mask_k, H * K, dk)
    dg = tl.cumsum(part - k * dk, axis=0, reverse=True) + carry[None, :]
    _store_rows(dg_ptr, base_k, t, valid, cols_k, mask_k, H * K, dg)


_PRECISION = {torch.float32: "ieee", torch.float16: "tf32", torch.bfloat16: "tf32"}


_OWN_ENTRIES = {  # a kernel's own launch_config entries: WARPS_<suffix>, STAGES_<suffix>
    _fwd_h_kernel: "H",
    _bwd_dh_kernel: "H",
    _fwd_a_kernel: "A",
    _fwd_o_kernel: "O",
    _bwd_dv_kernel: "O",
    _bwd_dqk_intra_kernel: "INTRA",
    _bwd_dqkg_kernel: "DQKG",
}


def kernel_launch(cfg: dict, kernel) -> dict:
    """The launch options of ``kernel``: ``num_warps`` from its own ``WARPS_*`` entry of ``launch_config`` where the
    config sets one, else the common ``num_warps``; ``num_stages`` (the pipelining of its loops' loads) from its own
    ``STAGES_*`` entry where set, else Triton's default."""
    suffix = _OWN_ENTRIES.get(kernel)
    if suffix is None:
        return {"num_warps": cfg["num_warps"]}
    options = {"num_warps": cfg.get(f"WARPS_{suffix}", cfg["num_warps"])}
    if f"STAGES_{suffix}" in cfg:
        options["num_stages"] = cfg[f"STAGES_{suffix}"]
    return options


def _dot_dtype_args(q: torch.Tensor) -> dict:
    rounded, operand = dot_dtypes(q.dtype, q.device)
    return {"ROUNDED": rounded, "OPERAND": operand}


class ChunkGrid(NamedTuple):
    """How time is cut into chunks: ``sequences`` (``B``, or ``N`` with ``cu_seqlens``), ``per_sequence`` chunks
    of a dense sequence, ``programs`` along the per-chunk kernels' chunk axis (every chunk of every sequence when
    varlen), ``heads`` along their head axis (``B H``, or ``H`` when varlen), ``slots`` rows of ``h [slots, H, K,
    V]``, and the varlen kernel arguments: ``cu_seqlens``, ``chunk_indices [programs, 2]`` (sequence, chunk within
    it) and ``chunk_offsets [N + 1]`` (each sequence's first chunk), all None when dense."""

    sequences: int
    per_sequence: int
    programs: int
    heads: int
    slots: int
    cu_seqlens: torch.Tensor | None
    chunk_indices: torch.Tensor | None
    chunk_offsets: torch.Tensor | None

    @property
    def varlen_args(self) -> dict:
        return {"cu_ptr": self.cu_seqlens, "offs_ptr": self.chunk_offsets, "IS_VARLEN": self.cu_seqlens is not None}

    @property
    def chunk_args(self) -> dict:
        return {**self.varlen_args, "chunk_ptr": self.chunk_indices}


def chunk_grid(q: torch.Tensor, block_t: int, cu_seqlens: torch.Tensor | None) -> ChunkGrid:
    """The ``ChunkGrid`` of ``q [B, T, H, K]`` in chunks of ``block_t`` steps; with ``cu_seqlens`` one host read
    (the number of chunks, which sizes the grids)."""
    batch, steps, heads, _ = q.shape
    if cu_seqlens is None:
        n_chunks = triton.cdiv(steps, block_t)
        return ChunkGrid(batch, n_chunks, n_chunks, batch * heads, batch * n_chunks, None, None, None)
    counts = (cu_seqlens[1:] - cu_seqlens[:-1] + block_t - 1) // block_t
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    total = int(offsets[-1])
    sequence = torch.repeat_interleave(torch.arange(len(counts), device=q.device), counts, output_size=total)
    local = torch.arange(total, device=q.device) - offsets[sequence]
    indices = torch.stack([sequence, local], 1).to(torch.int32).contiguous()
    return ChunkGrid(len(counts), 0, total, heads, total, cu_seqlens.contiguous(), indices, offsets.contiguous())


def chunk_cumsum(g: torch.Tensor, reverse: bool, cfg: dict, grid: ChunkGrid) -> torch.Tensor:
    """The chunk-local inclusive cumulative sum of ``g [B, T, H, Kg]`` in processing order, float32."""
    _, steps, heads, width = g.shape
    gc = torch.empty(g.shape, dtype=torch.float32, device=g.device)
    block = min(cfg["BK"], max(16, triton.next_power_of_2(width)))
    _cumsum_kernel[(grid.programs, grid.heads)](
        g, gc, steps, heads, width, grid.per_sequence, BT=cfg["BT"], BK=block, REVERSE=reverse, **grid.chunk_args
    )
    return gc


def chunk_states(k, v, gc, initial_state, reverse, cfg, grid, dtype=torch.float32):
    """The states entering every chunk ``h [slots, H, K, V]`` in ``dtype`` and the float32 final states
    ``[N, H, K, V]``."""
    _, steps, heads, key_dim = k.shape
    value_dim = v.shape[-1]
    h = torch.empty(grid.slots, heads, key_dim, value_dim, dtype=dtype, device=k.device)
    final_state = torch.empty(grid.sequences, heads, key_dim, value_dim, dtype=torch.float32, device=k.device)
    block_k, block_v = state_tiles(cfg, key_dim, value_dim, grid.sequences * heads)
    launch = (triton.cdiv(key_dim, block_k), triton.cdiv(value_dim, block_v), grid.sequences * heads)
    _fwd_h_kernel[launch](
        k, v, gc, initial_state, h, final_state, steps, heads, key_dim, value_dim, gc.shape[-1], grid.per_sequence,
        BT=cfg["BT"], BK=block_k, BV=block_v, PER_KEY=gc.shape[-1] > 1, HAS_H0=initial_state is not None,
        REVERSE=reverse, PRECISION=_PRECISION[k.dtype], **kernel_launch(cfg, _fwd_h_kernel),
        **grid.varlen_args,
    )  # fmt: skip
    return h, final_state


def intra_chunk_scores(q, k, gc, reverse, cfg, grid):
    """``A [B, T, H, BT]`` float32: row ``t`` holds the scores of query ``t`` against the keys of its chunk, column
    ``c`` the key at offset ``c`` of the chunk in processing order, written at and below the diagonal only."""
    batch, steps, heads, key_dim = q.shape
    scores = torch.empty(batch, steps, heads, cfg["BT"], dtype=torch.float32, device=q.device)
    _fwd_a_kernel[(cfg["BT"] // cfg["BC"], grid.programs, grid.heads)](
        q, k, gc, scores, steps, heads, key_dim, gc.shape[-1], grid.per_sequence, BT=cfg["BT"], BC=cfg["BC"],
        BK=cfg["BK"], PER_KEY=gc.shape[-1] > 1, REVERSE=reverse, PRECISION=_PRECISION[q.dtype],
        **kernel_launch(cfg, _fwd_a_kernel), **grid.chunk_args,
    )  # fmt: skip
    return scores


def chunk_gla_triton_fwd(q, k, v, g, scale, initial_state, reverse, cu_seqlens=None, cfg=None):
    """Forward launch. ``q, k [B, T, H, K]``, ``v [B, T, H, V]`` contiguous, ``g [B, T, H, Kg]`` contiguous
    (``Kg`` is ``K`` or 1), ``initial_state [N, H, K, V]`` float32 or None, ``cu_seqlens [N + 1]`` or None.

    Returns ``o [B, T, H, V]`` in ``q``'s dtype, the final states ``[N, H, K, V]`` and the intra-chunk scores
    ``A [B, T, H, BT]``, both float32.
    """
    cfg = cfg or launch_config(q.shape[-1], v.shape[-1])
    _, steps, heads, key_dim = q.shape
    value_dim = v.shape[-1]
    grid = chunk_grid(q, cfg["BT"], cu_seqlens)
    gc = chunk_cumsum(g, reverse, cfg, grid)
    h, final_state = chunk_states(k, v, gc, initial_state, reverse, cfg, grid, forward_state_dtype(q.dtype))
    scores = intra_chunk_scores(q, k, gc, reverse, cfg, grid)
    o = torch.empty_like(v)
    value_tile = cfg.get("BV_O", cfg["BV"])
    _fwd_o_kernel[(triton.cdiv(value_dim, value_tile), grid.programs, grid.heads)](
        q, v, gc, h, scores, o, scale, steps, heads, key_dim, value_dim, g.shape[-1], grid.per_sequence,
        BT=cfg["BT"], BK=cfg["BK"], BV=value_tile, PER_KEY=g.shape[-1] > 1, REVERSE=reverse,
        PRECISION=_PRECISION[q.dtype], **_dot_dtype_args(q),
        **kernel_launch(cfg, _fwd_o_kernel), **grid.chunk_args,
    )  # fmt: skip
    return o, final_state, scores


def chunk_gla_triton_bwd(q, k, v, g, scale, initial_state, do, dht, reverse, cu_seqlens=None, cfg=None, scores=None):
    """Backward launch: recomputes ``G`` and ``h`` (and the scores ``A`` unless given), then ``dh``, ``dv``,
    ``dq``, ``dk`` and ``dg``.

    Returns ``dq, dk, dv`` in the inputs' dtype, ``dg [B, T, H, Kg]`` and ``dh0 [N, H, K, V]`` in float32.
    """
    cfg = cfg or launch_config(q.shape[-1], v.shape[-1])
    batch, steps, heads, key_dim = q.shape
    value_dim, width = v.shape[-1], g.shape[-1]
    grid = chunk_grid(q, cfg["BT"], cu_seqlens)
    gc = chunk_cumsum(g, reverse, cfg, grid)
    h, final_state = chunk_states(k, v, gc, initial_state, reverse, cfg, grid)
    common = dict(BT=cfg["BT"], BK=cfg["BK"], BV=cfg["BV"], PER_KEY=width > 1, REVERSE=reverse,
                  PRECISION=_PRECISION[q.dtype])  # fmt: skip
    dh = torch.empty_like(h)
    dh0 = torch.empty_like(final_state)
    block_k, block_v = state_tiles(cfg, key_dim, value_dim, grid.sequences * heads)
    _bwd_dh_kernel[(triton.cdiv(key_dim, block_k), triton.cdiv(value_dim, block_v), grid.sequences * heads)](
        q, do, gc, dht, dh, dh0, scale, steps, heads, key_dim, value_dim, width, grid.per_sequence,
        HAS_DHT=dht is not None, **kernel_launch(cfg, _bwd_dh_kernel), **{**common, "BK": block_k, "BV": block_v},
        **grid.varlen_args,
    )  # fmt: skip
    dv = torch.empty_like(v)
    value_tile = cfg.get("BV_O", cfg["BV"])
    _bwd_dv_kernel[(triton.cdiv(value_dim, value_tile), grid.programs, grid.heads)](
        k, gc, do, dh, intra_chunk_scores(q, k, gc, reverse, cfg, grid) if scores is None else scores, dv, scale,
        steps, heads, key_dim, value_dim, width, grid.per_sequence, **_dot_dtype_args(q), **grid.chunk_args,
        **kernel_launch(cfg, _bwd_dv_kernel), **{**common, "BV": value_tile},
    )  # fmt: skip
    d_scores = torch.empty(batch, steps, heads, cfg["BT"], dtype=torch.float32, device=q.device)
    _bwd_da_kernel[(grid.programs, grid.heads)](
        do, v, d_scores, steps, heads, value_dim, grid.per_sequence, BT=cfg["BT"], BV=cfg["BV"], REVERSE=reverse,
        PRECISION=_PRECISION[q.dtype], **kernel_launch(cfg, _bwd_da_kernel), **grid.chunk_args,
    )  # fmt: skip
    key_tile = cfg.get("BK_DQK", cfg["BK"])
    intra_dq = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    intra_dk = torch.empty_like(intra_dq)
    _bwd_dqk_intra_kernel[(triton.cdiv(key_dim, key_tile) * (cfg["BT"] // cfg["BC"]), grid.programs, grid.heads)](
        q, k, gc, d_scores, intra_dq, intra_dk, scale, steps, heads, key_dim, width, grid.per_sequence, BT=cfg["BT"],
        BC=cfg["BC"], BK=key_tile, PER_KEY=width > 1, REVERSE=reverse, PRECISION=_PRECISION[q.dtype],
        **kernel_launch(cfg, _bwd_dqk_intra_kernel), **grid.chunk_args,
    )  # fmt: skip
    dq, dk = torch.empty_like(q), torch.empty_like(k)
    dg = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    _bwd_dqkg_kernel[(triton.cdiv(key_dim, key_tile), grid.programs, grid.heads)](
        q, k, v, gc, h, do, dh, intra_dq, intra_dk, dq, dk, dg, scale, steps, heads, key_dim, value_dim, width,
        grid.per_sequence, **kernel_launch(cfg, _bwd_dqkg_kernel), **{**common, "BK": key_tile},
        **_dot_dtype_args(q), **grid.chunk_args,
    )  # fmt: skip
    if width == 1:
        dg = dg.sum(-1, keepdim=True)
    return dq, dk, dv, dg, dh0


def chunk_gla_triton(q, k, v, g, scale, initial_state, reverse, cu_seqlens):
    """``chunk_gla`` on the Triton kernels, differentiable through the custom ops of ``op.py``. ``g [B, T, H, Kg]``
    (see ``log_gate``) or None, ``initial_state [N, H, K, V]`` or None, ``cu_seqlens [N + 1]`` or None: the
    kernels take the sequences' bounds themselves (one launch sequence for the whole batch).

    Returns ``o [B, T, H, V]`` in ``q``'s dtype and the final states ``[N, H, K, V]`` in float32.
    """
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    g = None if g is None else g.contiguous()
    if initial_state is not None:
        initial_state = initial_state.float().contiguous()
    o, final_state, _ = chunk_gla_fwd(q, k, v, g, scale, initial_state, reverse, cu_seqlens)
    return o, final_state
