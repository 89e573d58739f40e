"""The PyTorch face of ``chunk_gla``: chunked and vectorised over time, for CPU training and as a fallback.

Time is cut into chunks of ``CHUNK`` steps (fewer when the sequence is shorter). With ``G`` the chunk-local
inclusive cumulative log gate and ``S`` the state entering the chunk,

    o_t = scale * (q_t * exp(G_t)) S + scale * sum_{s <= t in the chunk} (q_t * exp(G_t - G_s)) . k_s  v_s,
    S  <- exp(G_last) * S + sum_s (k_s * exp(G_last - G_s))^T v_s,

the first line for all chunks at once, the second a Python loop over the T / CHUNK chunks.

Numerical safety: log gates are finite and <= 0, so ``G`` never increases along a chunk, and every exponential here
has a non-positive argument. Nothing overflows whatever the gate strength; what underflows to 0 is that small in
exact arithmetic too. A scalar gate (``Kg = 1``) leaves the key sum, so its decays are one masked ``[C, C]``
matrix. A per-key gate does not; the chunk is cut into sub-chunks of ``SUBCHUNK`` steps. A diagonal block takes
``exp(G_t - G_s)`` elementwise, ``[c, c, K]``, masked to ``s <= t`` before the exponential. An off-diagonal
block (keys in an earlier sub-chunk) splits the decay at the step ``a`` just before the queries' sub-chunk,
``exp(G_t - G_a) * exp(G_a - G_s)``, two factors <= 1 folded into q and k, and is one matrix product.
``CHUNK`` must be a multiple of ``SUBCHUNK``; tests patch both. ``SUBCHUNK = 8`` trades the ``[c, c, K]``
diagonal blocks against the number of off-diagonal ones; it was the fastest of 4, 8, 16 and 32 on a CPU (per-key
gates, ``B, T, H, K = 8, 1024, 4, 64``: 0.45 s forward and backward on 2 cores, against 0.5-1 s at 16).
"""

from itertools import pairwise

import torch

from ..backend import accumulation_dtype

CHUNK = 64
SUBCHUNK = 8


def _masked_exp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``exp(x)`` where ``mask``, else 0; the masked entries never reach the exponential."""
    return x.masked_fill(~mask, float("-inf")).exp()


def _causal(size: int, device: torch.device) -> torch.Tensor:
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def _intra_scalar(q: torch.Tensor, k: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Intra-chunk scores ``[..., C, C]`` for ``q, k [..., C, K]`` and a scalar cumulative gate ``G [..., C, 1]``."""
    return (q @ k.transpose(-1, -2)) * _masked_exp(G - G.transpose(-1, -2), _causal(G.shape[-2], G.device))


def _intra_per_key(q: torch.Tensor, k: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Intra-chunk scores ``[..., C, C]`` for ``q, k`` and a per-key cumulative gate ``G``, all ``[..., C, K]``."""
    chunk, width = G.shape[-2:]
    n, c = chunk // SUBCHUNK, SUBCHUNK
    qs, ks, Gs = (x.unflatten(-2, (n, c)) for x in (q, k, G))
    diag_decay = _masked_exp(Gs.unsqueeze(-2) - Gs.unsqueeze(-3), _causal(c, G.device).unsqueeze(-1))
    diagonal = (qs.unsqueeze(-2) * ks.unsqueeze(-3) * diag_decay).sum(-1)
    anchor = torch.cat([G.new_zeros(G.shape[:-2] + (1, width)), Gs[..., :-1, -1, :]], -2).unsqueeze(-2)
    earlier = torch.arange(chunk, device=G.device) < c * torch.arange(n, device=G.device).unsqueeze(-1)
    k_before = k.unsqueeze(-3) * _masked_exp(anchor - G.unsqueeze(-3), earlier.unsqueeze(-1))
    scores = (qs * (Gs - anchor).exp()) @ k_before.transpose(-1, -2)
    blocks = torch.eye(n, dtype=torch.bool, device=G.device)[:, None, :, None]
    scores = scores.unflatten(-1, (n, c)) + diagonal.unsqueeze(-2) * blocks
    return scores.reshape(*G.shape[:-2], chunk, chunk)


def _to_chunks(x: torch.Tensor, n_chunks: int, chunk: int) -> torch.Tensor:
    """``[B, T, H, D]`` zero-padded to ``n_chunks * chunk`` steps, as ``[B, H, n_chunks, chunk, D]``."""
    x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, n_chunks * chunk - x.shape[1]))
    return x.view(x.shape[0], n_chunks, chunk, *x.shape[2:]).permute(0, 3, 1, 2, 4)


def _chunk_gla(q, k, v, g, scale, state, reverse):
    """One batch of equal-length sequences. ``g [B, T, H, Kg]`` or None, ``state [B, H, K, V]`` (accumulation
    dtype). Returns ``o [B, T, H, V]`` and the final state, both in the accumulation dtype."""
    acc = state.dtype
    batch, steps, heads, _ = q.shape
    if steps == 0:
        return v.new_zeros(v.shape, dtype=acc), state
    if g is None:
        g = q.new_zeros(batch, steps, heads, 1, dtype=acc)
    if reverse:
        q, k, v, g = (x.flip(1) for x in (q, k, v, g))
    chunk = min(CHUNK, SUBCHUNK * -(-steps // SUBCHUNK))
    n_chunks = -(-steps // chunk)
    q, k, v, g = (_to_chunks(x.to(acc), n_chunks, chunk) for x in (q, k, v, g))
    q = q * scale
    G = g.cumsum(-2)
    scores = (_intra_scalar if G.shape[-1] == 1 else _intra_per_key)(q, k, G)
    G_last = G[..., -1:, :]
    updates = (k * (G_last - G).exp()).transpose(-1, -2) @ v
    decays = G_last.exp().transpose(-1, -2)
    entering = []
    for n in range(n_chunks):
        entering.append(state)
        state = decays[:, :, n] * state + updates[:, :, n]
    o = scores @ v + (q * G.exp()) @ torch.stack(entering, 2)
    o = o.permute(0, 2, 3, 1, 4).reshape(batch, n_chunks * chunk, heads, -1)[:, :steps]
    return (o.flip(1) if reverse else o), state


def chunk_gla_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None,
    scale: float,
    initial_state: torch.Tensor | None,
    reverse: bool,
    cu_seqlens: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked ``chunk_gla``, differentiable by autograd. ``q, k [B, T, H, K]``, ``v [B, T, H, V]``, the log gate
    ``g [B, T, H, Kg]`` (see ``log_gate``) or None, ``initial_state [N, H, K, V]`` or None; with ``cu_seqlens``
    (``B = 1``) each sequence runs on its own.

    Returns ``o [B, T, H, V]`` in ``q``'s dtype and the final states ``[N, H, K, V]`` in the accumulation dtype.
    """
    acc = accumulation_dtype(q.dtype)
    bounds = [0, q.shape[1]] if cu_seqlens is None else cu_seqlens.tolist()
    state_shape = (q.shape[0], q.shape[2], q.shape[3], v.shape[3])
    outputs, final_states = [], []
    for n, (bos, eos) in enumerate(pairwise(bounds)):
        rows = slice(None) if cu_seqlens is None else slice(n, n + 1)
        state = q.new_zeros(state_shape, dtype=acc) if initial_state is None else initial_state[rows].to(acc)
        span = slice(bos, eos)
        o, state = _chunk_gla(
            q[:, span], k[:, span], v[:, span], None if g is None else g[:, span], scale, state, reverse
        )
        outputs.append(o)
        final_states.append(state)
    return torch.cat(outputs, 1).to(q.dtype), torch.cat(final_states)
