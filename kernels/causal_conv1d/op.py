"""The Triton face of ``causal_conv1d`` as ``torch.library`` custom ops, so ``torch.compile`` traces through it
without graph breaks.

``lrnn::causal_conv1d_fwd`` and ``lrnn::causal_conv1d_bwd`` take contiguous ``x [B, T, D]``, ``weight [D, W]``,
``bias [D]`` or None, ``initial_state [B, D, W-1]`` in ``x``'s dtype or None (None when ``W = 1``, and always with
``reverse``), ``silu`` and ``reverse`` (the anti-causal conv). Custom ops return tensors only: the backward returns
an empty tensor in place of the gradient of an input that was None.
"""

import torch

from ..custom_ops import eager_custom_op


@eager_custom_op("lrnn::causal_conv1d_fwd", mutates_args=())
def causal_conv1d_fwd(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    silu: bool,
    reverse: bool,
) -> torch.Tensor:
    """Returns ``y [B, T, D]`` in ``x``'s dtype."""
    from .triton import causal_conv1d_triton_fwd

    return causal_conv1d_triton_fwd(x, weight, bias, initial_state, silu, reverse)


@causal_conv1d_fwd.register_fake
def _causal_conv1d_fwd_fake(x, weight, bias, initial_state, silu, reverse):
    return torch.empty_like(x)


@eager_custom_op("lrnn::causal_conv1d_bwd", mutates_args=())
def causal_conv1d_bwd(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    grad_y: torch.Tensor,
    silu: bool,
    reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``(dx, dweight, dbias, d_initial_state)`` in the dtypes of the inputs, an empty tensor for each of
    ``bias``, ``initial_state`` that was None."""
    from .triton import causal_conv1d_triton_bwd

    grads = causal_conv1d_triton_bwd(x, weight, bias, initial_state, grad_y, silu, reverse)
    return tuple(x.new_empty((0,)) if g is None else g for g in grads)


@causal_conv1d_bwd.register_fake
def _causal_conv1d_bwd_fake(x, weight, bias, initial_state, grad_y, silu, reverse):
    optional = [x.new_empty((0,)) if t is None else torch.empty_like(t) for t in (bias, initial_state)]
    return torch.empty_like(x), torch.empty_like(weight), *optional


def _setup_context(ctx, inputs, output):
    x, weight, bias, initial_state, silu, reverse = inputs
    ctx.save_for_backward(x, weight, bias, initial_state)
    ctx.silu, ctx.reverse = silu, reverse


def _backward(ctx, grad_y):
    x, weight, bias, initial_state = ctx.saved_tensors
    dx, dweight, dbias, d_initial_state = causal_conv1d_bwd(
        x, weight, bias, initial_state, grad_y.contiguous(), ctx.silu, ctx.reverse
    )
    dbias = None if bias is None else dbias
    return dx, dweight, dbias, (None if initial_state is None else d_initial_state), None, None


causal_conv1d_fwd.register_autograd(_backward, setup_context=_setup_context)
