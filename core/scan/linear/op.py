"""``linear_scan`` as ``torch.library`` custom ops, so ``torch.compile`` traces through it without graph breaks.

``lrnn::linear_scan_fwd`` and ``lrnn::linear_scan_bwd`` take canonical contiguous ``[B, T, D]`` tensors and
states already in the accumulation dtype; ``backend`` picks the chunked PyTorch or the Triton implementation.
"""

import torch

from ....kernels.custom_ops import eager_custom_op
from ..backend import accumulation_dtype
from .chunked import linear_scan_chunked_bwd, linear_scan_chunked_fwd


def _implementation(backend: str, direction: str):
    if backend == "torch":
        return linear_scan_chunked_fwd if direction == "fwd" else linear_scan_chunked_bwd
    from .triton import linear_scan_triton_bwd, linear_scan_triton_fwd

    return linear_scan_triton_fwd if direction == "fwd" else linear_scan_triton_bwd


@eager_custom_op("lrnn::linear_scan_fwd", mutates_args=())
def linear_scan_fwd(
    a: torch.Tensor, x: torch.Tensor, initial_state: torch.Tensor | None, reverse: bool, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``h [B, T, D]`` (``x``'s dtype) and the final state ``[B, D]`` (accumulation dtype)."""
    return _implementation(backend, "fwd")(a, x, initial_state, reverse)


@linear_scan_fwd.register_fake
def _linear_scan_fwd_fake(a, x, initial_state, reverse, backend):
    return torch.empty_like(x), x.new_empty((x.shape[0], x.shape[2]), dtype=accumulation_dtype(x.dtype))


@eager_custom_op("lrnn::linear_scan_bwd", mutates_args=())
def linear_scan_bwd(
    a: torch.Tensor,
    h: torch.Tensor,
    initial_state: torch.Tensor | None,
    grad_h: torch.Tensor,
    grad_final_state: torch.Tensor | None,
    reverse: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``(da, dx, d_initial_state)`` for the forward scan that produced ``h``."""
    return _implementation(backend, "bwd")(a, h, initial_state, grad_h, grad_final_state, reverse)


@linear_scan_bwd.register_fake
def _linear_scan_bwd_fake(a, h, initial_state, grad_h, grad_final_state, reverse, backend):
    state = h.new_empty((h.shape[0], h.shape[2]), dtype=accumulation_dtype(h.dtype))
    return torch.empty_like(a), torch.empty_like(h), state


def _setup_context(ctx, inputs, output):
    a, _, initial_state, reverse, backend = inputs
    ctx.save_for_backward(a, output[0], initial_state)
    ctx.set_materialize_grads(False)  # an unused final state's gradient arrives as None, not zeros
    ctx.reverse, ctx.backend = reverse, backend


def _backward(ctx, grad_h, grad_final_state):
    a, h, initial_state = ctx.saved_tensors
    if grad_h is None:
        grad_h = torch.zeros_like(h)
    da, dx, d_initial_state = linear_scan_bwd(
        a, h, initial_state, grad_h.contiguous(), grad_final_state, ctx.reverse, ctx.backend
    )
    return da, dx, (None if initial_state is None else d_initial_state), None, None


linear_scan_fwd.register_autograd(_backward, setup_context=_setup_context)
