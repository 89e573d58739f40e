"""The public ``layer_norm`` and ``rms_norm`` over the last dimension and the drop-in module ``LayerNorm``:
validate once, then dispatch to a face."""

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


def _output_dtype(x: torch.Tensor, to_autocast_dtype: bool) -> torch.dtype:
    """The autocast dtype when asked and autocast is on for ``x``'s device (CUDA or CPU); else ``F.layer_norm``'s:
    float32 for 16-bit inputs under CUDA's autocast, whose float32 list holds LayerNorm (the CPU's does not)."""
    device = x.device.type
    if to_autocast_dtype and device in ("cuda", "cpu") and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    if x.dtype in (torch.float16, torch.bfloat16) and device == "cuda" and torch.is_autocast_enabled("cuda"):
        return torch.float32
    return x.dtype


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    to_autocast_dtype: bool = False,
) -> torch.Tensor:
    """LayerNorm over the last dimension: ``(x - mean) / sqrt(var + eps) * weight + bias`` per row, the biased
    variance, as ``F.layer_norm(x, (C,), weight, bias, eps)``.

    Args:
        x: ``[..., C]``, float32, bfloat16, float16 or float64; any leading shape (``[B, H, W, C]`` maps,
            ``[N, C]`` voxels, ``[B, L, C]`` tokens).
        weight, bias: ``[C]`` or None.
        to_autocast_dtype: under autocast, return ``y`` in the autocast dtype (bfloat16, say) instead of float32:
            for a norm whose only consumer is a matmul or conv, which would cast it anyway. The Triton face then
            writes 2 bytes an element where it wrote 4, and the cast kernel is gone.

    Returns:
        ``y`` of ``x``'s shape and dtype (float32 for 16-bit inputs under CUDA autocast, as ``F.layer_norm``;
        the autocast dtype with ``to_autocast_dtype``), with float32 statistics; gradients flow to ``x``,
        ``weight`` and ``bias``.

    Backends: on CUDA without gradients, the Triton forward (many rows a program, where PyTorch's gives each row a
    thread block: 5.7x faster at 96 channels on the H100, ``lrnn bench layer_norm``); ``F.layer_norm`` when a
    gradient is needed (the Triton backward is correct but not yet faster than PyTorch's), on other devices and
    for float64. ``LRNN_KERNEL_BACKEND=torch`` or ``=triton`` forces one (the kernels on the CPU only under
    ``TRITON_INTERPRET=1``).
    """
    _check_inputs(x, weight, bias)
    channels, out_dtype = x.shape[-1], _output_dtype(x, to_autocast_dtype)
    if _takes_torch(x, weight, bias):
        return F.layer_norm(x, (channels,), weight, bias, eps).to(out_dtype)
    return _triton_face(x, weight, bias, eps, out_dtype, rms=False)


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-5, out_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """RMSNorm over the last dimension: ``x / sqrt(mean(x^2) + eps) * weight`` per row, computed in float32 (float64
    for float64 input), as mamba-ssm's ``RMSNorm`` that Vim uses.

    Args:
        x: ``[..., C]``, float32, bfloat16, float16 or float64.
        weight: ``[C]`` or None.
        out_dtype: the output's dtype, ``x``'s by default (Vim asks for its weight's).

    Returns:
        ``y`` of ``x``'s shape in ``out_dtype``; gradients flow to ``x`` and ``weight``.

    Backends as ``layer_norm``'s: the Triton forward on CUDA without gradients (written straight in ``out_dtype``,
    where ``F.rms_norm`` in float32 needs a cast kernel after it), ``F.rms_norm`` otherwise.
    """
    _check_inputs(x, weight, None)
    out_dtype = x.dtype if out_dtype is None else out_dtype
    if _takes_torch(x, weight, None):
        compute = torch.promote_types(x.dtype, torch.float32)
        weight = None if weight is None else weight.to(compute)
        return F.rms_norm(x.to(compute), (x.shape[-1],), weight, eps).to(out_dtype)
    return _triton_face(x, weight, None, eps, out_dtype, rms=True)


def _takes_torch(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> bool:
    """Whether a norm runs on PyTorch: where a gradient is needed (the Triton backward is correct but not yet
    faster), off CUDA, for float64 and empty inputs, unless ``LRNN_KERNEL_BACKEND`` says otherwise."""
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    cuda_default = "torch" if needs_grad else "triton"
    return kernel_backend(x.device, cuda_default) == "torch" or x.dtype == torch.float64 or x.numel() == 0


def _triton_face(x, weight, bias, eps: float, out_dtype: torch.dtype, rms: bool) -> torch.Tensor:
    params = [None if t is None else t.contiguous() for t in (weight, bias)]
    y, _, _ = layer_norm_fwd(x.reshape(-1, x.shape[-1]).contiguous(), *params, float(eps), out_dtype, rms)
    return y.view(x.shape)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters, state dict and numbers) that runs ``layer_norm`` when it normalises one
    trailing dimension, so checkpoints of either load into the other. ``to_autocast_dtype=True`` returns the
    autocast dtype under autocast (``layer_norm``'s argument): for pre-norms that feed a linear layer."""

    def __init__(self, normalized_shape, *args, to_autocast_dtype: bool = False, **kwargs) -> None:
        super().__init__(normalized_shape, *args, **kwargs)
        self.to_autocast_dtype = to_autocast_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.normalized_shape) != 1:
            y = super().forward(x)
            return y.to(_output_dtype(y, self.to_autocast_dtype))
        return layer_norm(x, self.weight, self.bias, self.eps, self.to_autocast_dtype)
