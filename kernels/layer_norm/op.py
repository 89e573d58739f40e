"""The Triton face of ``layer_norm`` as ``torch.library`` custom ops, so ``torch.compile`` traces through it without
graph breaks.

``lrnn::layer_norm_fwd`` takes a contiguous ``x [M, C]``, ``weight``, ``bias`` ``[C]`` or None, ``eps``, the
output dtype and ``rms`` (the RMSNorm: no centring, ``mean`` zeros); it returns ``y`` and the float32 row
statistics ``mean``, ``rstd`` ``[M]`` that ``lrnn::layer_norm_bwd`` reads (with the same ``rms``). The backward
returns an empty tensor in place of the gradient of an absent parameter.
"""

import torch

from ..custom_ops import eager_custom_op


@eager_custom_op("lrnn::layer_norm_fwd", mutates_args=())
def layer_norm_fwd(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
    out_dtype: torch.dtype,
    rms: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``(y [M, C]`` in ``out_dtype``, ``mean [M]``, ``rstd [M]`` float32)."""
    from .triton import layer_norm_triton_fwd

    return layer_norm_triton_fwd(x, weight, bias, eps, out_dtype, rms)


@layer_norm_fwd.register_fake
def _layer_norm_fwd_fake(x, weight, bias, eps, out_dtype, rms):
    stats = x.new_empty(x.shape[0], dtype=torch.float32)
    return x.new_empty(x.shape, dtype=out_dtype), stats, torch.empty_like(stats)


@eager_custom_op("lrnn::layer_norm_bwd", mutates_args=())
def layer_norm_bwd(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    grad_y: torch.Tensor,
    rms: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``(dx, dweight, dbias)`` in the dtypes of ``x``, ``weight``, ``bias``, an empty tensor for each
    parameter that was None."""
    from .triton import layer_norm_triton_bwd

    grads = layer_norm_triton_bwd(x, weight, bias, mean, rstd, grad_y, rms)
    return tuple(x.new_empty((0,)) if g is None else g for g in grads)


@layer_norm_bwd.register_fake
def _layer_norm_bwd_fake(x, weight, bias, mean, rstd, grad_y, rms):
    return torch.empty_like(x), *(x.new_empty((0,)) if t is None else torch.empty_like(t) for t in (weight, bias))


def _setup_context(ctx, inputs, output):
    x, weight, bias, _, _, ctx.rms = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, weight, bias, mean, rstd)
    ctx.mark_non_differentiable(mean, rstd)


def _backward(ctx, grad_y, _grad_mean, _grad_rstd):
    x, weight, bias, mean, rstd = ctx.saved_tensors
    dx, dweight, dbias = layer_norm_bwd(x, weight, bias, mean, rstd, grad_y.contiguous(), ctx.rms)
    return dx, (None if weight is None else dweight), (None if bias is None else dbias), None, None, None


layer_norm_fwd.register_autograd(_backward, setup_context=_setup_context)
