"""The public ``layer_norm`` over the last dimension and its drop-in module ``LayerNorm``: validate once, then
dispatch to a face."""

import torch
import torch.nn.functional as F
from torch import nn

from ..causal_conv1d.conv import kernel_backend
from .op import layer_norm_fwd


def _check_inputs(x: object, weight: object, bias: object) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a real floating tensor, got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (the channels it is normalised over), got a scalar")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(t).__name__}")
        if tuple(t.shape) != (x.shape[-1],):
            raise ValueError(f"{name} must be [C] with C = {x.shape[-1]} (x's last dimension), got {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")


def _output_dtype(x: torch.Tensor) -> torch.dtype:
    """``F.layer_norm``'s: float32 for 16-bit inputs under CUDA's autocast, whose float32 list holds LayerNorm
    (the CPU's does not)."""
    if x.dtype in (torch.float16, torch.bfloat16) and x.is_cuda and torch.is_autocast_enabled("cuda"):
        return torch.float32
    return x.dtype


def layer_norm(
    x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, eps: float = 1e-5
) -> torch.Tensor:
    """LayerNorm over the last dimension: ``(x - mean) / sqrt(var + eps) * weight + bias`` per row, the biased
    variance, as ``F.layer_norm(x, (C,), weight, bias, eps)``.

    Args:
        x: ``[..., C]``, float32, bfloat16, float16 or float64; any leading shape (``[B, H, W, C]`` maps,
            ``[N, C]`` voxels, ``[B, L, C]`` tokens).
        weight, bias: ``[C]`` or None.

    Returns:
        ``y`` of ``x``'s shape and dtype (float32 for 16-bit inputs under CUDA autocast, as ``F.layer_norm``), with
        float32 statistics; gradients flow to ``x``, ``weight`` and ``bias``.

    Backends: on CUDA without gradients, the Triton forward (many rows a program, where PyTorch's gives each row a
    thread block: 5.7x faster at 96 channels on the H100, ``lrnn bench layer_norm``); ``F.layer_norm`` when a
    gradient is needed (the Triton backward is correct but not yet faster than PyTorch's), on other devices and
    for float64. ``LRNN_KERNEL_BACKEND=torch`` or ``=triton`` forces one (the kernels on the CPU only under
    ``TRITON_INTERPRET=1``).
    """
    _check_inputs(x, weight, bias)
    channels = x.shape[-1]
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    cuda_default = "torch" if needs_grad else "triton"
    if kernel_backend(x.device, cuda_default) == "torch" or x.dtype == torch.float64 or x.numel() == 0:
        return F.layer_norm(x, (channels,), weight, bias, eps)
    params = [None if t is None else t.contiguous() for t in (weight, bias)]
    y, _, _ = layer_norm_fwd(x.reshape(-1, channels).contiguous(), *params, float(eps), _output_dtype(x))
    return y.view(x.shape)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters, state dict and numbers) that runs ``layer_norm`` when it normalises one
    trailing dimension, so checkpoints of either load into the other."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.normalized_shape) != 1:
            return super().forward(x)
        return layer_norm(x, self.weight, self.bias, self.eps)
