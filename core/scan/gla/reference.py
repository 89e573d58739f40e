"""The definition of ``chunk_gla``: a plain sequential loop, the oracle every other face is tested against."""

from itertools import pairwise

import torch

from ..backend import accumulation_dtype
from .gates import log_gate
from .step import gla_step


def chunk_gla_reference(
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
    """``S_t = diag(exp g_t) S_{t-1} + k_t^T v_t``, ``o_t = scale * q_t S_t`` one step at a time.

    Args:
        q, k: ``[B, T, H, K]``; v: ``[B, T, H, V]``.
        g: log gate ``[B, T, H, K]`` (per key), ``[B, T, H]`` (per head), ``[H]`` (fixed) or None.
        scale: defaults to ``K ** -0.5``.
        initial_state: ``[N, H, K, V]`` (zeros when None), ``N = B`` or the number of sequences.
        reverse: run from ``t = T-1`` down to 0 (``S_t`` then follows ``S_{t+1}``).
        cu_seqlens: ``[N + 1]`` boundaries of the sequences concatenated in a batch of one; the state
            restarts at each.

    Returns:
        ``o [B, T, H, V]`` in ``q``'s dtype and, if asked, the final states ``[N, H, K, V]`` in the
        accumulation dtype (float32; float64 for float64 inputs). Differentiable by autograd.
    """
    acc = accumulation_dtype(q.dtype)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    g = log_gate(g, q)
    bounds = [0, q.shape[1]] if cu_seqlens is None else cu_seqlens.tolist()
    state_shape = (q.shape[0], q.shape[2], q.shape[3], v.shape[3])
    outputs, final_states = [None] * q.shape[1], []
    qs, ks, vs = q.unbind(1), k.unbind(1), v.unbind(1)  # one backward for all steps (q[:, t] costs O(T) each)
    gs = [None] * q.shape[1] if g is None else g.unbind(1)
    for n, (bos, eos) in enumerate(pairwise(bounds)):
        rows = slice(None) if cu_seqlens is None else slice(n, n + 1)
        state = q.new_zeros(state_shape, dtype=acc) if initial_state is None else initial_state[rows].to(acc)
        for t in range(eos - 1, bos - 1, -1) if reverse else range(bos, eos):
            outputs[t], state = gla_step(qs[t], ks[t], vs[t], gs[t], state, scale)
        final_states.append(state)
    return torch.stack(outputs, 1).to(q.dtype), (torch.cat(final_states) if output_final_state else None)
