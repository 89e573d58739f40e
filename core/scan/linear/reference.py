"""The definition of ``linear_scan``: a plain sequential loop, the oracle every other face is tested against."""

import torch

from ..backend import accumulation_dtype


def linear_scan_reference(
    a: torch.Tensor,
    x: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``h_t = a_t * h_{t-1} + x_t`` one step at a time (``h_t = a_t * h_{t+1} + x_t`` when ``reverse``).

    Args:
        a, x: ``[B, T, ...]``, time on dim 1.
        initial_state: ``[B, ...]``, the state before the first step (zeros when None).

    Returns:
        ``h [B, T, ...]`` in the dtype of ``x`` and, if asked, the final state ``[B, ...]`` in the accumulation
        dtype. Differentiable by autograd.
    """
    acc = accumulation_dtype(x.dtype)
    h = a.new_zeros(x.shape[:1] + x.shape[2:], dtype=acc) if initial_state is None else initial_state.to(acc)
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    outputs = [None] * x.shape[1]
    a_steps, x_steps = a.unbind(1), x.unbind(1)  # one backward for all steps (a[:, t] costs O(T) each)
    for t in steps:
        h = a_steps[t].to(acc) * h + x_steps[t].to(acc)
        outputs[t] = h
    return torch.stack(outputs, dim=1).to(x.dtype), (h if output_final_state else None)
