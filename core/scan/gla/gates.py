"""The forms of ``chunk_gla``'s log gate, and the one shape every face computes with."""

import torch


def log_gate(g: torch.Tensor | None, q: torch.Tensor) -> torch.Tensor | None:
    """``g`` as ``[..., H, Kg]``, broadcastable against ``q [..., H, K]`` (``...`` is ``B, T`` or ``B``).

    A per-key gate (``q``'s shape) is returned as it is (``Kg = K``); a scalar gate per head and step
    (``q``'s shape without ``K``) and a fixed per-head decay ``[H]`` (RetNet) become ``Kg = 1`` views, the
    latter expanded over ``...`` without a copy. None (linear attention) stays None.
    """
    if g is None or g.dim() == q.dim():
        return g
    if g.dim() == 1:
        return g.view(g.shape[0], 1).expand(*q.shape[:-1], 1)
    return g.unsqueeze(-1)
