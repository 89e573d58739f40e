"""The public ``linear_scan`` and ``linear_scan_step``: validate once, then dispatch to a face."""

import torch

from ..backend import accumulation_dtype, scan_backend
from ..checks import check_scan_tensor, check_state, check_triton_runnable
from .op import linear_scan_fwd
from .reference import linear_scan_reference


def linear_scan(
    a: torch.Tensor,
    x: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """First-order linear recurrence, elementwise, in parallel over time.

    ``h_t = a_t * h_{t-1} + x_t`` for ``t = 0 .. T-1`` from ``h_{-1} = initial_state`` (zeros when None), or
    with ``reverse=True`` ``h_t = a_t * h_{t+1} + x_t`` from ``h_T = initial_state``, without copies.

    Args:
        a: gates ``[B, T, ...]``; any trailing shape is flattened into the channel dim ``D``.
        x: inputs, same shape and dtype as ``a``: float32, bfloat16, float16, float64, complex64 or complex128.
        initial_state: ``[B, ...]`` (``x``'s shape without time), any float or complex dtype; it receives a
            gradient like every other input.
        output_final_state: also return the last state (the gradient of that state flows back too).
        reverse: run from ``t = T-1`` down to 0.

    Returns:
        ``h [B, T, ...]`` in ``x``'s dtype, and the final state ``[B, ...]`` in float32 (complex64; float64 and
        complex128 for inputs of those dtypes) or None.

    CUDA tensors run the Triton kernels, others the chunked PyTorch path; ``LRNN_SCAN_BACKEND`` forces one.

    Example::

        a = torch.rand(2, 1024, 64).sigmoid()
        h, h_last = linear_scan(a, (1 - a) * torch.randn(2, 1024, 64), output_final_state=True)
    """
    check_scan_tensor("a", a)
    check_scan_tensor("x", x)
    if a.shape != x.shape:
        raise ValueError(f"a and x must have the same shape, got a {tuple(a.shape)} and x {tuple(x.shape)}")
    if a.dtype != x.dtype:
        raise TypeError(f"a and x must have the same dtype, got a {a.dtype} and x {x.dtype}")
    if a.device != x.device:
        raise ValueError(f"a and x must be on the same device, got a on {a.device} and x on {x.device}")
    batch, steps = x.shape[:2]
    state_shape = x.shape[:1] + x.shape[2:]
    if initial_state is not None:
        check_state("initial_state", initial_state, state_shape, x.device)
    backend = scan_backend(x.device)
    if backend == "reference":
        return linear_scan_reference(a, x, initial_state, output_final_state, reverse)
    if backend == "triton":
        check_triton_runnable(x.device)
    acc = accumulation_dtype(x.dtype)
    h0 = None if initial_state is None else initial_state.reshape(batch, -1).to(acc).contiguous()
    h, final_state = linear_scan_fwd(
        a.reshape(batch, steps, -1).contiguous(), x.reshape(batch, steps, -1).contiguous(), h0, reverse, backend
    )
    return h.view(x.shape), (final_state.view(state_shape) if output_final_state else None)


def linear_scan_step(a_t: torch.Tensor, x_t: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
    """One streaming step, ``h_t = a_t * h_{t-1} + x_t``.

    Args:
        a_t, x_t: ``[B, ...]`` for one time step.
        h: the previous state ``[B, ...]`` (zeros when None).

    Returns:
        The new state ``[B, ...]`` in the accumulation dtype (float32 / complex64 for low-precision inputs);
        it is also the output at this step.
    """
    if not isinstance(a_t, torch.Tensor) or not isinstance(x_t, torch.Tensor):
        raise TypeError(f"a_t and x_t must be tensors, got {type(a_t).__name__} and {type(x_t).__name__}")
    if a_t.shape != x_t.shape:
        raise ValueError(f"a_t and x_t must have the same shape, got {tuple(a_t.shape)} and {tuple(x_t.shape)}")
    acc = accumulation_dtype(x_t.dtype)
    if h is None:
        return x_t.to(acc, copy=True)
    check_state("h", h, x_t.shape, x_t.device)
    return a_t.to(acc) * h.to(acc) + x_t.to(acc)
