"""The Triton face of the row gather as ``torch.library`` custom ops, so ``torch.compile`` traces through it without
graph breaks.

``lrnn::gather_rows(src [M, C], index [K]) -> [K, C]`` is differentiable; its backward is
``lrnn::gather_rows_bwd(grad [K, C], index [K], num_rows = M) -> [M, C]``. Tensors are contiguous, ``index`` is
int32 or int64 with every entry in ``[0, M)``.
"""

import torch

from ..custom_ops import eager_custom_op


@eager_custom_op("lrnn::gather_rows", mutates_args=())
def gather_rows(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Returns ``src[index]`` ``[K, C]`` in ``src``'s dtype."""
    from .triton import gather_rows_triton

    return gather_rows_triton(src, index)


@gather_rows.register_fake
def _gather_rows_fake(src, index):
    return src.new_empty((index.shape[0], src.shape[1]))


@eager_custom_op("lrnn::gather_rows_bwd", mutates_args=())
def gather_rows_bwd(grad: torch.Tensor, index: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Returns ``d_src [num_rows, C]`` in ``grad``'s dtype: row ``j`` sums the ``grad[i]`` with ``index[i] = j``."""
    from .triton import gather_rows_triton_bwd

    return gather_rows_triton_bwd(grad, index, num_rows)


@gather_rows_bwd.register_fake
def _gather_rows_bwd_fake(grad, index, num_rows):
    return grad.new_empty((num_rows, grad.shape[1]))


def _setup_context(ctx, inputs, output):
    src, index = inputs
    ctx.save_for_backward(index)
    ctx.num_rows = src.shape[0]


def _backward(ctx, grad):
    (index,) = ctx.saved_tensors
    return gather_rows_bwd(grad.contiguous(), index, ctx.num_rows), None


gather_rows.register_autograd(_backward, setup_context=_setup_context)
