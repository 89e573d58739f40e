"""Elementwise Triton kernels that move ``linear_scan``'s streams and carry nothing between steps.

The scan's floor is its bytes over the device-to-device copy bandwidth (one read stream, one write stream). A
kernel that reads two streams and writes one, as the forward does, or reads three and writes two, as the backward
does, may not reach the copy's rate on the same GPU. These kernels time that ceiling in the same run: the scan at
100% of them would be as fast as memory allows for its pattern of streams, whatever the copy does.

    forward streams:  h = a * x              (read a, x; write h)
    backward streams: da = h * dh, dx = a * dh   (read a, h, dh; write da, dx)
"""

import torch
import triton
import triton.language as tl

BLOCK = 4096  # elements a program: 8 KB a stream in bf16, 16 KB in float32


@triton.jit
def _forward_streams_kernel(a_ptr, x_ptr, h_ptr, numel, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    a = tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    tl.store(h_ptr + offs, (a * x).to(h_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward_streams_kernel(a_ptr, h_ptr, dh_ptr, da_ptr, dx_ptr, numel, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    a = tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    h = tl.load(h_ptr + offs, mask=mask).to(tl.float32)
    dh = tl.load(dh_ptr + offs, mask=mask).to(tl.float32)
    tl.store(da_ptr + offs, (h * dh).to(da_ptr.dtype.element_ty), mask=mask)
    tl.store(dx_ptr + offs, (a * dh).to(dx_ptr.dtype.element_ty), mask=mask)


def forward_streams(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``a * x`` for contiguous tensors of one shape and dtype, in one pass (two streams in, one out)."""
    h = torch.empty_like(x)
    _forward_streams_kernel[(triton.cdiv(x.numel(), BLOCK),)](a, x, h, x.numel(), BLOCK=BLOCK, num_warps=8)
    return h


def backward_streams(a: torch.Tensor, h: torch.Tensor, dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h * dh, a * dh)`` in one pass (three streams in, two out)."""
    da, dx = torch.empty_like(a), torch.empty_like(a)
    _backward_streams_kernel[(triton.cdiv(a.numel(), BLOCK),)](a, h, dh, da, dx, a.numel(), BLOCK=BLOCK, num_warps=8)
    return da, dx
