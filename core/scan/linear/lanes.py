"""``linear_scan``'s forward with time inside each thread: one channel a lane, the tile's steps in its registers.

``triton.py``'s kernels load a ``[BT, BD]`` tile with the channels contiguous, so Triton vectorises along the
channels and spreads time across the lanes, and ``tl.associative_scan`` over time then runs as shuffles (0.25
``SHFL`` an element in the bf16 forward, sm_90 SASS). Here the tile is ``[BD, BT]``, channels first, and the
channel stride reaches the kernel as a runtime value (always 1) that Triton does not specialise, so it cannot
prove the channels contiguous: it then lays the tile out one channel a lane with the ``BT`` steps in that lane's
registers, and the scan over time is a sequential loop in each thread with no shuffle at all (offline at BT 32,
BD 32, one warp: 743 instructions a tile of 1024 elements, no ``SHFL``, 111 registers). Loads are one 2-byte
element a lane, 64 contiguous bytes a warp (coalesced), instead of 16-byte vectors. Real inputs only.
"""

import torch
import triton
import triton.language as tl

from ..backend import accumulation_dtype
from .triton import _TRITON_DTYPE, _combine, check_real


@triton.jit
def _columns(i, n_tiles, base, cols, offs_d, mask_d, T, D, channel_stride, BT: tl.constexpr, REVERSE: tl.constexpr):
    """Offsets and mask of the ``i``-th ``[BD, BT]`` tile visited, its columns in the order visited (from the end,
    columns reversed, when ``REVERSE``); ``i = n_tiles`` is fully masked."""
    if REVERSE:
        offs_t = (n_tiles - 1 - i) * BT + (BT - 1 - cols)
    else:
        offs_t = i * BT + cols
    mask = mask_d[:, None] & ((offs_t >= 0) & (offs_t < T))[None, :]
    offs = base + offs_t.to(tl.int64)[None, :] * D + offs_d[:, None] * channel_stride
    return offs, mask


@triton.jit(do_not_specialize=["T", "channel_stride"])
def _linear_scan_fwd_lanes_kernel(
    a_ptr, x_ptr, h_ptr, h0_ptr, ht_ptr, T, D, channel_stride,
    BT: tl.constexpr, BD: tl.constexpr, REVERSE: tl.constexpr, HAS_H0: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = tl.program_id(0) * BD + tl.arange(0, BD)
    mask_d = offs_d < D
    cols = tl.arange(0, BT)
    base = pid_b * T * D
    state = pid_b * D + offs_d
    carry = tl.zeros([BD], dtype=ACC)
    if HAS_H0:
        carry = tl.load(h0_ptr + state, mask=mask_d, other=0.0).to(ACC)
    n_tiles = tl.cdiv(T, BT)
    offs_n, mask_n = _columns(0, n_tiles, base, cols, offs_d, mask_d, T, D, channel_stride, BT, REVERSE)
    a_n = tl.load(a_ptr + offs_n, mask=mask_n, other=1.0)
    x_n = tl.load(x_ptr + offs_n, mask=mask_n, other=0.0)
    for i in range(0, n_tiles):
        offs, mask, a, x = offs_n, mask_n, a_n.to(ACC), x_n.to(ACC)
        offs_n, mask_n = _columns(i + 1, n_tiles, base, cols, offs_d, mask_d, T, D, channel_stride, BT, REVERSE)
        a_n = tl.load(a_ptr + offs_n, mask=mask_n, other=1.0)
        x_n = tl.load(x_ptr + offs_n, mask=mask_n, other=0.0)
        a, x = tl.associative_scan((a, x), 1, _combine)
        h = x + a * carry[:, None]
        tl.store(h_ptr + offs, h.to(h_ptr.dtype.element_ty), mask=mask)
        carry = tl.sum(tl.where(cols[None, :] == BT - 1, h, 0.0), axis=1)
    tl.store(ht_ptr + state, carry, mask=mask_d)


def linear_scan_lanes_fwd(
    a: torch.Tensor, x: torch.Tensor, initial_state: torch.Tensor | None, reverse: bool, config: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward launch, the contract of ``triton.linear_scan_triton_fwd``; ``config`` gives ``BT, BD, num_warps``
    (one warp for ``BD = 32``: a lane a channel)."""
    check_real("the time-in-thread kernels", x)
    batch, steps, width = x.shape
    acc = accumulation_dtype(x.dtype)
    h = torch.empty_like(x)
    final_state = torch.empty(batch, width, dtype=acc, device=x.device)
    _linear_scan_fwd_lanes_kernel[(triton.cdiv(width, config["BD"]), batch)](
        a, x, h, initial_state, final_state, steps, width, 1, BT=config["BT"], BD=config["BD"], REVERSE=reverse,
        HAS_H0=initial_state is not None, ACC=_TRITON_DTYPE[acc], num_warps=config["num_warps"],
    )  # fmt: skip
    return h, final_state
