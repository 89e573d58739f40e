"""``fused_recurrent_gla``: the decode path of ``chunk_gla``, one Triton program walking the time steps in order.

One program per (V block, batch and head) holds its float32 state slice ``S [K, BV]`` (all keys, ``BV`` values) in
registers and applies, step by step in processing order (``t = T-1 .. 0`` with ``reverse``),

    S_t = diag(exp g_t) S_{t-1} + k_t^T v_t,    o_t = scale * q_t S_t,

reading ``q_t, k_t, v_t, g_t`` in place in ``[B, T, H, *]``. Nothing is chunked, so it pays for T from 1 up to a few
dozen tokens (generation with a cached state); for longer sequences ``chunk_gla`` is faster. All arithmetic is
elementwise float32 (no ``tl.dot``), so it matches the reference to float32 rounding.

The backward (one kernel, fla's two-pass scheme) re-runs the forward to get ``dq_t = scale * S_t do_t^T`` (pass 1),
then walks back in time carrying ``dS_t = scale * q_t^T do_t + diag(exp g_{t+1}) dS_{t+1}``, started at the final
state's cotangent ``dht`` (pass 2):

    dk_t = dS_t v_t^T,   dv_t = k_t dS_t,   dh0 = diag(exp g_0) dS_0,
    dg_t = sum_v dS_t * (exp g_t * S_{t-1}) = dg_{t+1} + q_t * dq_t - k_t * dk_t,   dg_T = sum_v dht * S_T,

the last the identity ``sum_v dS_t * S_t = q_t * dq_t + dg_{t+1}``, so no state is stored or rebuilt. ``dq``,
``dk`` and ``dg`` sum over the values, hence over the V blocks: each program writes float32 partials
``[NV, B, T, H, K]`` that the wrapper adds up; ``dv`` and ``dh0`` are complete in one program.
"""

import torch
import triton
import triton.language as tl

from ..backend import scan_backend
from ..checks import check_triton_runnable
from .gates import log_gate
from .reference import chunk_gla_reference
from .scan import _check_gate, _check_initial_state, _check_qkv, _check_scale
from .triton import _load_state, _state_tile


def launch_config(key_dim: int, value_dim: int) -> dict:
    """The key tile ``BK`` covers every key; the value tile ``BV`` keeps the state slice at <= 4096 floats (more
    V blocks: more programs for a small decode batch). Tests patch it to smaller tiles."""
    block_k = triton.next_power_of_2(key_dim)
    return {"BK": block_k, "BV": min(triton.next_power_of_2(value_dim), max(16, 4096 // block_k)), "num_warps": 4}


@triton.jit
def _start(ptr, b, h, T, H, width, cols, REVERSE: tl.constexpr):
    """Pointers to ``cols`` of row ``(b, t, h)`` of a ``[B, T, H, width]`` tensor at the first processing step."""
    if REVERSE:
        t = T - 1
    else:
        t = 0
    return ptr + ((b * T + t) * H + h) * width + cols


@triton.jit
def _decay(state, g_ptr, mask_k, PER_KEY: tl.constexpr):
    """``diag(exp g_t) state`` for a per-key gate row (``[K]``) or a scalar gate."""
    if PER_KEY:
        decayed = state * tl.exp(tl.load(g_ptr, mask=mask_k, other=0.0).to(tl.float32))[:, None]
    else:  # an early return would not stop Triton from compiling the scalar branch for a row of pointers
        decayed = state * tl.exp(tl.load(g_ptr).to(tl.float32))
    return decayed


@triton.jit(do_not_specialize=["T"])
def _fwd_kernel(
    q_ptr, k_ptr, v_ptr, g_ptr, h0_ptr, o_ptr, ht_ptr, scale, T, H, K, V, KG,
    BK: tl.constexpr, BV: tl.constexpr, HAS_GATE: tl.constexpr, PER_KEY: tl.constexpr, HAS_H0: tl.constexpr,
    STORE_HT: tl.constexpr, REVERSE: tl.constexpr,
):  # fmt: skip
    vb, bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    cols_k, cols_v, mask_k, mask_v, mask_kv, state_offs = _state_tile(0, vb, K, V, BK, BV)
    state_offs += bh * K * V
    state = _load_state(h0_ptr, state_offs, mask_kv, HAS_H0, BK, BV)
    step = -1 if REVERSE else 1
    p_q, p_k = _start(q_ptr, b, h, T, H, K, cols_k, REVERSE), _start(k_ptr, b, h, T, H, K, cols_k, REVERSE)
    p_v, p_o = _start(v_ptr, b, h, T, H, V, cols_v, REVERSE), _start(o_ptr, b, h, T, H, V, cols_v, REVERSE)
    p_g = _start(g_ptr, b, h, T, H, KG, cols_k if PER_KEY else 0, REVERSE)
    for _ in range(0, T):
        q = tl.load(p_q, mask=mask_k, other=0.0).to(tl.float32)
        k = tl.load(p_k, mask=mask_k, other=0.0).to(tl.float32)
        v = tl.load(p_v, mask=mask_v, other=0.0).to(tl.float32)
        if HAS_GATE:
            state = _decay(state, p_g, mask_k, PER_KEY)
        state += k[:, None] * v[None, :]
        o = tl.sum(state * q[:, None], axis=0) * scale
        tl.store(p_o, o.to(p_o.dtype.element_ty), mask=mask_v)
        p_q, p_k, p_g = p_q + step * H * K, p_k + step * H * K, p_g + step * H * KG
        p_v, p_o = p_v + step * H * V, p_o + step * H * V
    if STORE_HT:
        tl.store(ht_ptr + state_offs, state, mask=mask_kv)


@triton.jit(do_not_specialize=["T"])
def _bwd_kernel(
    q_ptr, k_ptr, v_ptr, g_ptr, h0_ptr, do_ptr, dht_ptr, dq_ptr, dk_ptr, dv_ptr, dg_ptr, dh0_ptr,
    scale, T, H, K, V, KG, PART,
    BK: tl.constexpr, BV: tl.constexpr, HAS_GATE: tl.constexpr, PER_KEY: tl.constexpr, HAS_H0: tl.constexpr,
    HAS_DHT: tl.constexpr, REVERSE: tl.constexpr,
):  # fmt: skip
    vb, bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    cols_k, cols_v, mask_k, mask_v, mask_kv, state_offs = _state_tile(0, vb, K, V, BK, BV)
    state_offs += bh * K * V
    part = vb.to(tl.int64) * PART  # this V block's slice of the [NV, B, T, H, K] partials
    g_cols = cols_k if PER_KEY else 0

    # Pass 1, forward in processing order: the states again, and dq_t = scale * S_t do_t^T.
    state = _load_state(h0_ptr, state_offs, mask_kv, HAS_H0, BK, BV)
    step = -1 if REVERSE else 1
    p_k, p_dq = _start(k_ptr, b, h, T, H, K, cols_k, REVERSE), _start(dq_ptr + part, b, h, T, H, K, cols_k, REVERSE)
    p_v, p_do = _start(v_ptr, b, h, T, H, V, cols_v, REVERSE), _start(do_ptr, b, h, T, H, V, cols_v, REVERSE)
    p_g = _start(g_ptr, b, h, T, H, KG, g_cols, REVERSE)
    for _ in range(0, T):
        k = tl.load(p_k, mask=mask_k, other=0.0).to(tl.float32)
        v = tl.load(p_v, mask=mask_v, other=0.0).to(tl.float32)
        do = tl.load(p_do, mask=mask_v, other=0.0).to(tl.float32)
        if HAS_GATE:
            state = _decay(state, p_g, mask_k, PER_KEY)
        state += k[:, None] * v[None, :]
        tl.store(p_dq, tl.sum(state * do[None, :], axis=1) * scale, mask=mask_k)
        p_k, p_dq, p_g = p_k + step * H * K, p_dq + step * H * K, p_g + step * H * KG
        p_v, p_do = p_v + step * H * V, p_do + step * H * V
    tl.debug_barrier()  # pass 2 reads back the dq partials this program wrote

    # Pass 2, backward from the last processing step: dS_t, then dk, dv and the running dg.
    d_state = _load_state(dht_ptr, state_offs, mask_kv, HAS_DHT, BK, BV)
    dg = tl.sum(d_state * state, axis=1)
    back = not REVERSE
    p_q, p_k = _start(q_ptr, b, h, T, H, K, cols_k, back), _start(k_ptr, b, h, T, H, K, cols_k, back)
    p_dq, p_dk = _start(dq_ptr + part, b, h, T, H, K, cols_k, back), _start(dk_ptr + part, b, h, T, H, K, cols_k, back)
    p_dg = _start(dg_ptr + part, b, h, T, H, K, cols_k, back)
    p_v, p_do = _start(v_ptr, b, h, T, H, V, cols_v, back), _start(do_ptr, b, h, T, H, V, cols_v, back)
    p_dv = _start(dv_ptr, b, h, T, H, V, cols_v, back)
    p_g = _start(g_ptr, b, h, T, H, KG, g_cols, back)
    for _ in range(0, T):
        q = tl.load(p_q, mask=mask_k, other=0.0).to(tl.float32)
        k = tl.load(p_k, mask=mask_k, other=0.0).to(tl.float32)
        v = tl.load(p_v, mask=mask_v, other=0.0).to(tl.float32)
        do = tl.load(p_do, mask=mask_v, other=0.0).to(tl.float32)
        d_state += (scale * q)[:, None] * do[None, :]
        dk = tl.sum(d_state * v[None, :], axis=1)
        tl.store(p_dk, dk, mask=mask_k)
        tl.store(p_dv, tl.sum(d_state * k[:, None], axis=0).to(p_dv.dtype.element_ty), mask=mask_v)
        if HAS_GATE:
            dg += q * tl.load(p_dq, mask=mask_k, other=0.0) - k * dk
            tl.store(p_dg, dg, mask=mask_k)
            d_state = _decay(d_state, p_g, mask_k, PER_KEY)
        p_q, p_k, p_dq, p_dk = p_q - step * H * K, p_k - step * H * K, p_dq - step * H * K, p_dk - step * H * K
        p_dg, p_g = p_dg - step * H * K, p_g - step * H * KG
        p_v, p_do, p_dv = p_v - step * H * V, p_do - step * H * V, p_dv - step * H * V
    if HAS_H0:
        tl.store(dh0_ptr + state_offs, d_state, mask=mask_kv)


def _grid(q: torch.Tensor, v: torch.Tensor, cfg: dict) -> tuple:
    return triton.cdiv(v.shape[-1], cfg["BV"]), q.shape[0] * q.shape[2]


def fused_recurrent_gla_fwd(q, k, v, g, scale, initial_state, output_final_state, reverse, cfg=None):
    """Forward launch. ``q, k [B, T, H, K]``, ``v [B, T, H, V]`` contiguous, ``g [B, T, H, Kg]`` contiguous (``Kg``
    is ``K`` or 1) or None, ``initial_state [B, H, K, V]`` float32 contiguous or None.

    Returns ``o [B, T, H, V]`` in ``q``'s dtype and the final state in float32 (None unless asked).
    """
    batch, steps, heads, key_dim = q.shape
    value_dim = v.shape[-1]
    cfg = cfg or launch_config(key_dim, value_dim)
    o = torch.empty_like(v)
    final_state = None
    if output_final_state:
        final_state = torch.empty(batch, heads, key_dim, value_dim, dtype=torch.float32, device=q.device)
    _fwd_kernel[_grid(q, v, cfg)](
        q, k, v, q if g is None else g, q if initial_state is None else initial_state, o,
        o if final_state is None else final_state, scale, steps, heads, key_dim, value_dim,
        1 if g is None else g.shape[-1],
        BK=cfg["BK"], BV=cfg["BV"], HAS_GATE=g is not None, PER_KEY=g is not None and g.shape[-1] > 1,
        HAS_H0=initial_state is not None, STORE_HT=output_final_state, REVERSE=reverse, num_warps=cfg["num_warps"],
    )  # fmt: skip
    return o, final_state


def fused_recurrent_gla_bwd(q, k, v, g, scale, initial_state, do, dht, reverse, cfg=None):
    """Backward launch (inputs as for the forward; ``do`` contiguous, ``dht [B, H, K, V]`` float32 or None).

    Returns ``dq, dk, dv`` in the inputs' dtype, ``dg [B, T, H, Kg]`` in float32 (None without a gate) and
    ``dh0 [B, H, K, V]`` in float32 (None without an initial state).
    """
    key_dim, value_dim = q.shape[-1], v.shape[-1]
    cfg = cfg or launch_config(key_dim, value_dim)
    grid = _grid(q, v, cfg)
    partials = lambda: torch.empty(grid[0], *q.shape, dtype=torch.float32, device=q.device)  # noqa: E731
    dq, dk, dg = partials(), partials(), None if g is None else partials()
    dv = torch.empty_like(v)
    dh0 = None if initial_state is None else torch.empty_like(initial_state)
    _bwd_kernel[grid](
        q, k, v, q if g is None else g, q if initial_state is None else initial_state, do,
        do if dht is None else dht, dq, dk, dv, dq if dg is None else dg, dq if dh0 is None else dh0,
        scale, q.shape[1], q.shape[2], key_dim, value_dim, 1 if g is None else g.shape[-1], q.numel(),
        BK=cfg["BK"], BV=cfg["BV"], HAS_GATE=g is not None, PER_KEY=g is not None and g.shape[-1] > 1,
        HAS_H0=initial_state is not None, HAS_DHT=dht is not None, REVERSE=reverse, num_warps=cfg["num_warps"],
    )  # fmt: skip
    if dg is not None:
        dg = dg.sum(0)
        dg = dg if g.shape[-1] > 1 else dg.sum(-1, keepdim=True)
    return dq.sum(0).to(q.dtype), dk.sum(0).to(k.dtype), dv, dg, dh0


class FusedRecurrentGLAFunction(torch.autograd.Function):
    """Autograd around the two launches; saves the inputs only (the backward re-runs the recurrence)."""

    @staticmethod
    def forward(ctx, q, k, v, g, scale, initial_state, output_final_state, reverse):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        gate = None if g is None else g.contiguous()
        o, final_state = fused_recurrent_gla_fwd(q, k, v, gate, scale, initial_state, output_final_state, reverse)
        ctx.save_for_backward(q, k, v, gate, initial_state)
        ctx.scale, ctx.reverse = scale, reverse
        ctx.gate_dtype = None if g is None else g.dtype
        return o, final_state

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, gate, initial_state = ctx.saved_tensors
        dht = None if dht is None else dht.float().contiguous()
        dq, dk, dv, dg, dh0 = fused_recurrent_gla_bwd(
            q, k, v, gate, ctx.scale, initial_state, do.contiguous(), dht, ctx.reverse
        )
        return dq, dk, dv, None if dg is None else dg.to(ctx.gate_dtype), None, dh0, None, None


def fused_recurrent_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated linear attention step by step, for decoding: ``S_t = diag(exp g_t) S_{t-1} + k_t^T v_t``,
    ``o_t = scale * q_t S_t`` per head; the same contract as ``chunk_gla`` (without ``cu_seqlens``), for T from 1
    to a few dozen steps continuing from a cached state.

    Args:
        q, k: ``[B, T, H, K]``; v: ``[B, T, H, V]``; one dtype: float32, bfloat16, float16 or float64.
        g: log gates (<= 0), any real dtype: ``[B, T, H, K]`` per key, ``[B, T, H]`` per head and step, ``[H]``
            fixed per head, or None.
        scale: defaults to ``K ** -0.5``.
        initial_state: ``[B, H, K, V]`` (zeros when None), any real dtype; it receives a gradient.
        output_final_state: also return the last state (its gradient flows back too).
        reverse: run from ``t = T-1`` down to 0.

    Returns:
        ``o [B, T, H, V]`` in ``q``'s dtype, and the final state ``[B, H, K, V]`` in float32 (float64 for float64
        inputs) or None.

    Faces: CUDA tensors run the Triton kernels (one program per head and value tile walks the steps with the
    state in registers), other devices the sequential PyTorch loop (``chunk_gla_reference``);
    ``LRNN_SCAN_BACKEND`` forces one (``triton`` runs the kernels on the CPU under ``TRITON_INTERPRET=1``);
    float64 inputs stay on the loop, the kernels compute in float32.

    Example (a cached state handed from one call to the next)::

        state = torch.zeros(2, 4, 64, 64)
        for _ in range(3):
            q, k, v = torch.randn(3, 2, 1, 4, 64).unbind(0)
            g = torch.nn.functional.logsigmoid(torch.randn(2, 1, 4, 64))
            o, state = fused_recurrent_gla(q, k, v, g, initial_state=state, output_final_state=True)
    """
    _check_qkv(q, k, v, "B, T, H")
    _check_gate("g", g, q)
    batch, _, heads, key_dim = q.shape
    if initial_state is not None:
        _check_initial_state("initial_state", initial_state, (batch, heads, key_dim, v.shape[-1]), q.device)
    scale = _check_scale(scale, key_dim)
    if scan_backend(q.device) != "triton" or q.dtype == torch.float64:
        return chunk_gla_reference(q, k, v, g, scale, initial_state, output_final_state, reverse)
    check_triton_runnable(q.device)
    if initial_state is not None:
        initial_state = initial_state.float().contiguous()
    return FusedRecurrentGLAFunction.apply(q, k, v, log_gate(g, q), scale, initial_state, output_final_state, reverse)
