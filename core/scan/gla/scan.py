"""The public ``chunk_gla`` and ``chunk_gla_step``: validate once, then dispatch to a face."""

from itertools import pairwise
from numbers import Real

import torch

from ..backend import accumulation_dtype, scan_backend
from ..checks import check_scan_tensor, check_state, check_triton_runnable
from .chunked import chunk_gla_chunked
from .gates import log_gate
from .reference import chunk_gla_reference
from .step import gla_step


def _check_qkv(q: object, k: object, v: object, lead: str) -> None:
    """``q, k [<lead>, K]`` and ``v [<lead>, V]``: real floating tensors of one dtype and device."""
    for name, t, last in (("q", q, "K"), ("k", k, "K"), ("v", v, "V")):
        if lead.startswith("B, T"):
            check_scan_tensor(name, t)
        elif not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a real floating-point tensor, got dtype {t.dtype}")
        if t.dim() != lead.count(",") + 2:
            raise ValueError(f"{name} must be [{lead}, {last}], got shape {tuple(t.shape)}")
    if k.shape != q.shape:
        raise ValueError(f"q and k must both be [{lead}, K], got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if v.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"v [{lead}, V] must match q [{lead}, K] in {lead}: q {tuple(q.shape)}, v {tuple(v.shape)}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k and v must have one dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    if k.device != q.device or v.device != q.device:
        raise ValueError(f"q, k and v must be on one device, got {q.device}, {k.device} and {v.device}")


def _check_gate(name: str, g: object, q: torch.Tensor) -> None:
    """``g`` is None or a real floating log gate per key (``q``'s shape), per head (without K) or fixed ``[H]``."""
    if g is None:
        return
    if not isinstance(g, torch.Tensor) or not g.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor or None, got {getattr(g, 'dtype', type(g))}")
    forms = (tuple(q.shape), tuple(q.shape[:-1]), (q.shape[-2],))
    if tuple(g.shape) not in forms:
        raise ValueError(
            f"{name} must be per key {forms[0]}, per head {forms[1]} or fixed per head {forms[2]}, got {tuple(g.shape)}"
        )
    if g.device != q.device:
        raise ValueError(f"{name} is on {g.device} but q is on {q.device}")


def _check_scale(scale: object, key_dim: int) -> float:
    if scale is None:
        return key_dim**-0.5
    if isinstance(scale, bool) or not isinstance(scale, Real):
        raise TypeError(f"scale must be a real number or None, got {type(scale).__name__}")
    return float(scale)


def _check_cu_seqlens(cu_seqlens: object, q: torch.Tensor) -> int:
    """FlashAttention-style boundaries ``[N + 1]`` of sequences concatenated in a batch of one; returns ``N``."""
    if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"cu_seqlens must be an int64 or int32 tensor, got {getattr(cu_seqlens, 'dtype', cu_seqlens)}")
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise ValueError(f"cu_seqlens must be [N + 1] with N >= 1, got shape {tuple(cu_seqlens.shape)}")
    if q.shape[0] != 1:
        raise ValueError(f"cu_seqlens needs the sequences concatenated in a batch of B = 1, got q {tuple(q.shape)}")
    if cu_seqlens.device != q.device:
        raise ValueError(f"cu_seqlens is on {cu_seqlens.device} but q is on {q.device}")
    bounds = cu_seqlens.tolist()
    if bounds[0] != 0 or bounds[-1] != q.shape[1] or any(b < a for a, b in pairwise(bounds)):
        raise ValueError(f"cu_seqlens must start at 0, never decrease and end at T = {q.shape[1]}, got {bounds}")
    return len(bounds) - 1


def _check_initial_state(name: str, state: torch.Tensor, shape: tuple, device: torch.device) -> torch.Tensor:
    check_state(name, state, torch.Size(shape), device)
    if state.is_complex():
        raise TypeError(f"{name} must be real, got dtype {state.dtype}")
    return state


def chunk_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    reverse: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated linear attention: ``S_t = diag(exp g_t) S_{t-1} + k_t^T v_t``, ``o_t = scale * q_t S_t`` per head.

    Args:
        q, k: ``[B, T, H, K]``; v: ``[B, T, H, V]``; one dtype: float32, bfloat16, float16 or float64.
        g: log gates (<= 0, e.g. ``logsigmoid``), any real dtype: ``[B, T, H, K]`` per key (GLA, RWKV-6),
            ``[B, T, H]`` per head and step (Mamba-2, mLSTM), ``[H]`` fixed per head (RetNet), or None (linear
            attention).
        scale: defaults to ``K ** -0.5``.
        initial_state: ``[N, H, K, V]`` with ``N = B`` (or the number of sequences with ``cu_seqlens``), any
            real dtype; it receives a gradient like every other input.
        output_final_state: also return the last states (their gradient flows back too).
        reverse: run from ``t = T-1`` down to 0.
        cu_seqlens: LongTensor ``[N + 1]``, the FlashAttention convention: ``B = 1`` and sequence ``n`` is
            ``[cu_seqlens[n], cu_seqlens[n+1])``, each starting from its own initial state (empty ones allowed).

    Returns:
        ``o [B, T, H, V]`` in ``q``'s dtype, and the final states ``[N, H, K, V]`` in float32 (float64 for
        float64 inputs) or None.

    Faces: CUDA tensors run the Triton kernels (``triton.py``), other devices the chunked PyTorch face, and
    float64 inputs stay on the chunked face (the kernels compute in float32). ``LRNN_SCAN_BACKEND=torch`` forces
    the chunked face on CUDA too, ``triton`` the kernels on the CPU under ``TRITON_INTERPRET=1``, ``reference``
    the sequential loop. Inside LION's backbone on the H100 the Triton face is 1.2-1.7x faster forward+backward
    than the chunked face at half its peak memory (``benchmarks/NOTES.md``).

    Example::

        q, k, v = torch.randn(3, 2, 1000, 4, 64).unbind(0)
        g = torch.nn.functional.logsigmoid(torch.randn(2, 1000, 4, 64)) / 16
        o, state = chunk_gla(q, k, v, g, output_final_state=True)
    """
    _check_qkv(q, k, v, "B, T, H")
    _check_gate("g", g, q)
    batch, _, heads, key_dim = q.shape
    sequences = batch if cu_seqlens is None else _check_cu_seqlens(cu_seqlens, q)
    if initial_state is not None:
        _check_initial_state("initial_state", initial_state, (sequences, heads, key_dim, v.shape[-1]), q.device)
    scale = _check_scale(scale, key_dim)
    backend = scan_backend(q.device)
    if backend == "reference":
        return chunk_gla_reference(q, k, v, g, scale, initial_state, output_final_state, reverse, cu_seqlens)
    if backend == "triton" and q.dtype != torch.float64:
        check_triton_runnable(q.device)
        from .triton import chunk_gla_triton

        o, final_state = chunk_gla_triton(q, k, v, log_gate(g, q), scale, initial_state, reverse, cu_seqlens)
        return o, (final_state if output_final_state else None)
    o, final_state = chunk_gla_chunked(q, k, v, log_gate(g, q), scale, initial_state, reverse, cu_seqlens)
    return o, (final_state if output_final_state else None)


def chunk_gla_step(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    g_t: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step of ``chunk_gla``: ``q_t, k_t [B, H, K]``, ``v_t [B, H, V]``, ``g_t`` ``[B, H, K]``,
    ``[B, H]``, ``[H]`` or None, ``state [B, H, K, V]`` (zeros when None).

    Returns ``o_t [B, H, V]`` in ``q_t``'s dtype and the new state in float32 (float64 for float64 inputs).

    On CUDA (the ``triton`` backend) the step is ``fused_recurrent_gla``'s kernel over one step, which reads and
    writes the state once; elsewhere ``gla_step`` in PyTorch.
    """
    _check_qkv(q_t, k_t, v_t, "B, H")
    _check_gate("g_t", g_t, q_t)
    batch, heads, key_dim = q_t.shape
    shape = (batch, heads, key_dim, v_t.shape[-1])
    acc = accumulation_dtype(q_t.dtype)
    if state is None:
        state = q_t.new_zeros(shape, dtype=acc)
    state = _check_initial_state("state", state, shape, q_t.device).to(acc)
    scale = _check_scale(scale, key_dim)
    if scan_backend(q_t.device) == "triton" and q_t.dtype != torch.float64:
        from .fused_recurrent import fused_recurrent_gla

        g_seq = None if g_t is None or g_t.dim() == 1 else g_t.unsqueeze(1)  # a fixed [H] gate stays as it is
        o, state = fused_recurrent_gla(
            q_t[:, None], k_t[:, None], v_t[:, None], g_t if g_seq is None else g_seq, scale, state, True
        )
        return o[:, 0], state
    o_t, state = gla_step(q_t, k_t, v_t, log_gate(g_t, q_t), state, scale)
    return o_t.to(q_t.dtype), state
