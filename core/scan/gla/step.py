"""One step of the gated linear attention recurrence: the definition the reference loops over."""

import torch


def gla_step(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    g_t: torch.Tensor | None,
    state: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``S_t = diag(exp g_t) S_{t-1} + k_t^T v_t`` and ``o_t = scale * q_t S_t``, per head.

    Args:
        q_t, k_t: ``[B, H, K]``; v_t: ``[B, H, V]``.
        g_t: log gate ``[B, H, Kg]`` (``Kg`` is ``K`` or 1, see ``log_gate``) or None (no decay).
        state: ``S_{t-1} [B, H, K, V]`` in the accumulation dtype.

    Returns:
        ``o_t [B, H, V]`` and ``S_t [B, H, K, V]``, both in ``state``'s dtype.
    """
    acc = state.dtype
    if g_t is not None:
        state = g_t.to(acc).exp().unsqueeze(-1) * state
    state = state + k_t.to(acc).unsqueeze(-1) * v_t.to(acc).unsqueeze(-2)
    return scale * (q_t.to(acc).unsqueeze(-2) @ state).squeeze(-2), state
