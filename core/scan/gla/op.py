"""The Triton face of ``chunk_gla`` as ``torch.library`` custom ops, so ``torch.compile`` traces through it without
graph breaks.

``lrnn::chunk_gla_fwd`` and ``lrnn::chunk_gla_bwd`` take contiguous ``q, k [B, T, H, K]``, ``v [B, T, H, V]``, the
log gate ``g [B, T, H, Kg]`` (``Kg`` is ``K`` or 1) or None, an initial state ``[N, H, K, V]`` in float32 or
None, and ``cu_seqlens [N + 1]`` or None (``N = B`` without it). Custom ops return tensors only: the forward
always returns the final state, and the intra-chunk scores for the backward (or an empty tensor where the backward
recomputes them, ``keeps_scores``); the backward returns an empty tensor in place of the gradient of an input
that was None.
"""

import torch

from ....kernels.custom_ops import eager_custom_op


def _absent(like: torch.Tensor) -> torch.Tensor:
    """The placeholder returned in place of the gradient of an input that was None."""
    return like.new_empty((0,))


def _gate(g: torch.Tensor | None, q: torch.Tensor) -> torch.Tensor:
    """``g``, or the zero log gate of linear attention ``[B, T, H, 1]`` when None."""
    return q.new_zeros((*q.shape[:-1], 1), dtype=torch.float32) if g is None else g


def _final_state(q: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor | None) -> torch.Tensor:
    batch, _, heads, key_dim = q.shape
    sequences = batch if cu_seqlens is None else cu_seqlens.shape[0] - 1
    return q.new_empty((sequences, heads, key_dim, v.shape[-1]), dtype=torch.float32)


@eager_custom_op("lrnn::chunk_gla_fwd", mutates_args=())
def chunk_gla_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None,
    scale: float,
    initial_state: torch.Tensor | None,
    reverse: bool,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``o [B, T, H, V]`` (``q``'s dtype), the final states ``[N, H, K, V]`` (float32) and the scores
    ``[B, T, H, BT]`` (float32) kept for the backward, or an empty tensor."""
    from .triton import chunk_gla_triton_fwd, keeps_scores

    o, final_state, scores = chunk_gla_triton_fwd(q, k, v, _gate(g, q), scale, initial_state, reverse, cu_seqlens)
    return o, final_state, (scores if keeps_scores(q, v) else _absent(q))


@chunk_gla_fwd.register_fake
def _chunk_gla_fwd_fake(q, k, v, g, scale, initial_state, reverse, cu_seqlens=None):
    from .triton import keeps_scores, launch_config

    if keeps_scores(q, v):
        scores = q.new_empty((*q.shape[:3], launch_config(q.shape[-1], v.shape[-1])["BT"]), dtype=torch.float32)
    else:
        scores = _absent(q)
    return torch.empty_like(v), _final_state(q, v, cu_seqlens), scores


@eager_custom_op("lrnn::chunk_gla_bwd", mutates_args=())
def chunk_gla_bwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None,
    scale: float,
    initial_state: torch.Tensor | None,
    grad_o: torch.Tensor,
    grad_final_state: torch.Tensor | None,
    reverse: bool,
    cu_seqlens: torch.Tensor | None = None,
    scores: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns the gradients of ``(q, k, v, g, initial_state)``: ``dg`` in ``g``'s dtype and ``d_initial_state``
    in float32, an empty tensor for each of ``g`` and ``initial_state`` that was None. ``scores`` are the
    forward's (recomputed when None or empty)."""
    from .triton import chunk_gla_triton_bwd

    kept = None if scores is None or scores.numel() == 0 else scores
    dq, dk, dv, dg, dh0 = chunk_gla_triton_bwd(
        q, k, v, _gate(g, q), scale, initial_state, grad_o, grad_final_state, reverse, cu_seqlens, scores=kept
    )
    dg = _absent(q) if g is None else dg.to(g.dtype)
    return dq, dk, dv, dg, (_absent(q) if initial_state is None else dh0)


@chunk_gla_bwd.register_fake
def _chunk_gla_bwd_fake(
    q, k, v, g, scale, initial_state, grad_o, grad_final_state, reverse, cu_seqlens=None, scores=None
):
    dg = _absent(q) if g is None else torch.empty_like(g)
    dh0 = _absent(q) if initial_state is None else _final_state(q, v, cu_seqlens)
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), dg, dh0


def _setup_context(ctx, inputs, output):
    q, k, v, g, scale, initial_state, reverse, cu_seqlens = inputs
    ctx.save_for_backward(q, k, v, g, initial_state, cu_seqlens, output[2])
    ctx.mark_non_differentiable(output[2])
    ctx.set_materialize_grads(False)  # no zeros for the saved tensors' gradient (gigabytes at long T)
    ctx.scale, ctx.reverse = scale, reverse


def _backward(ctx, grad_o, grad_final_state, _):
    q, k, v, g, initial_state, cu_seqlens, scores = ctx.saved_tensors
    grad_o = torch.zeros_like(v) if grad_o is None else grad_o.contiguous()
    grad_final_state = None if grad_final_state is None else grad_final_state.contiguous()
    dq, dk, dv, dg, dh0 = chunk_gla_bwd(
        q, k, v, g, ctx.scale, initial_state, grad_o, grad_final_state, ctx.reverse, cu_seqlens, scores
    )
    return dq, dk, dv, (None if g is None else dg), None, (None if initial_state is None else dh0), None, None


chunk_gla_fwd.register_autograd(_backward, setup_context=_setup_context)
