"""The public ``causal_conv1d`` and ``causal_conv1d_step``: validate once, then dispatch to a face."""

import os

import torch

from .op import causal_conv1d_fwd
from .reference import causal_conv1d_reference, causal_conv1d_step_reference, check_reverse, final_conv_state

BACKENDS = ("torch", "triton")
ACTIVATIONS = (None, "silu")


def kernel_backend(device: torch.device, cuda_default: str = "torch") -> str:
    """``torch`` or ``triton``: ``LRNN_KERNEL_BACKEND`` if set, else ``cuda_default`` on CUDA (the face a kernel's
    H100 timings chose) and ``torch`` elsewhere."""
    forced = os.environ.get("LRNN_KERNEL_BACKEND", "").strip().lower()
    if forced:
        if forced not in BACKENDS:
            raise ValueError(f"LRNN_KERNEL_BACKEND must be one of {BACKENDS}, got {forced!r}")
        if forced == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f"the triton backend needs CUDA tensors (got {device}); set TRITON_INTERPRET=1 before importing lrnn "
                "to run the kernels on the CPU, or LRNN_KERNEL_BACKEND=torch"
            )
        return forced
    return cuda_default if device.type == "cuda" else "torch"


def _check_tensor(name: str, t: object, shape: tuple, layout: str, device: torch.device) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a real floating tensor, got dtype {t.dtype}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must be {layout} = {list(shape)}, got shape {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but x is on {device}")


def _check_inputs(x, weight, bias, activation, state, state_name: str, layout: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a real floating tensor, got dtype {x.dtype}")
    if x.dim() != len(layout.split(",")) or x.numel() == 0:
        raise ValueError(f"x must be a non-empty {layout} tensor, got shape {tuple(x.shape)}")
    channels = x.shape[-1]
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.shape[0] != channels or weight.shape[1] < 1:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight must be [D, W] with D = {channels} (from x) and W >= 1, got {shape}")
    _check_tensor("weight", weight, weight.shape, "[D, W]", x.device)
    if bias is not None:
        _check_tensor("bias", bias, (channels,), "[D]", x.device)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if state is not None:
        _check_tensor(state_name, state, (x.shape[0], channels, weight.shape[1] - 1), "[B, D, W-1]", x.device)


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Short causal depthwise convolution over time, fused with an optional SiLU (the conv of a Mamba block).

    ``y_t[d] = act(bias[d] + sum_{k=0}^{W-1} weight[d, k] * x_{t-W+1+k}[d])``, where the inputs before ``t = 0``
    come from ``initial_state`` (zeros when None): ``F.conv1d`` with ``W-1`` steps of left padding, so
    ``weight[:, W-1]`` multiplies the current step (``nn.Conv1d(D, D, W, groups=D).weight[:, 0]`` as is).

    ``reverse=True`` runs the same conv against time (the backward branch of a bidirectional Mamba):
    ``y_t[d] = act(bias[d] + sum_{k=0}^{W-1} weight[d, k] * x_{t+W-1-k}[d])`` with zeros past ``t = T-1``, equal to
    ``causal_conv1d(x.flip(1), ...)[0].flip(1)`` without the two copies. It reads the future, so it takes no
    ``initial_state`` and no ``output_final_state`` (ValueError).

    Args:
        x: ``[B, T, D]``, time-major, channels contiguous; float32, bfloat16, float16 or float64.
        weight: ``[D, W]``, any ``W >= 1`` (4 in Mamba). bias: ``[D]`` or None.
        activation: ``"silu"`` or None.
        initial_state: ``[B, D, W-1]``, the ``W-1`` inputs before ``x``, oldest first; it gets a gradient.
        output_final_state: also return the last ``W-1`` inputs of ``[initial_state, x]``, to continue from.
        reverse: anti-causal, as above (keyword only).

    Returns:
        ``y [B, T, D]`` in ``x``'s dtype (float32 arithmetic, float64 for float64 inputs) and the final state
        ``[B, D, W-1]`` in ``x``'s dtype, or None. Gradients flow to ``x``, ``weight``, ``bias`` and
        ``initial_state``, also through the final state.

    Backends: the Triton forward and backward kernels on CUDA (on the H100 13x cuDNN's grouped conv forward and
    3.7x forward+backward, ``lrnn bench causal_conv1d``), the PyTorch path (``F.conv1d``) elsewhere;
    ``LRNN_KERNEL_BACKEND=torch`` or ``=triton`` forces one (the kernels on the CPU only under
    ``TRITON_INTERPRET=1``).

    Example::

        conv = torch.nn.Conv1d(64, 64, 4, groups=64)
        y, state = causal_conv1d(x, conv.weight[:, 0], conv.bias, "silu", output_final_state=True)
        y_next, state = causal_conv1d(x_next, conv.weight[:, 0], conv.bias, "silu", state, True)
    """
    _check_inputs(x, weight, bias, activation, initial_state, "initial_state", "[B, T, D]")
    check_reverse(reverse, initial_state, output_final_state)
    width = weight.shape[1]
    if kernel_backend(x.device, cuda_default="triton") == "torch":
        return causal_conv1d_reference(x, weight, bias, activation, initial_state, output_final_state, reverse=reverse)
    h0 = None if initial_state is None or width == 1 else initial_state.to(x.dtype).contiguous()
    bias = None if bias is None else bias.contiguous()
    y = causal_conv1d_fwd(x.contiguous(), weight.contiguous(), bias, h0, activation == "silu", reverse)
    return y, (final_conv_state(x, initial_state, width) if output_final_state else None)


def causal_conv1d_step(
    x_t: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step of ``causal_conv1d``: ``x_t [B, D]``, ``state [B, D, W-1]`` (zeros when None) ->
    ``(y_t [B, D]``, the next state ``[B, D, W-1]``), both in ``x_t``'s dtype. Plain PyTorch on every device."""
    _check_inputs(x_t, weight, bias, activation, state, "state", "[B, D]")
    if state is None:
        state = x_t.new_zeros(x_t.shape[0], x_t.shape[1], weight.shape[1] - 1)
    return causal_conv1d_step_reference(x_t, weight, bias, activation, state)
