"""``linear_scan``'s forward with its tiles brought in by Hopper's copy engine (TMA): the 16-bit forward on sm_90+.

The forward of ``triton.py`` prefetches the next ``[BT, BD]`` tile of ``a`` and ``x`` into registers while it scans
the current one: one tile in flight a program, paid for in registers (210 a thread at bf16 BT 64 / BD 32, so at
most 8 one-warp programs an SM). Here the loads go through tensor descriptors in a loop pipelined over
``num_stages``: the copy engine writes the next ``num_stages - 1`` tiles into shared memory while the program scans,
with no registers held for them, and ``h`` leaves through the same engine. Forward only, real inputs, time in
order (a reversed walk would have to flip each tile, which ``triton.py`` avoids by its row order). Tiles past the
end of a sequence arrive zero-filled and their rows are not stored, so the carry is read at the last real row.

    linear_scan_triton_fwd(a, x, None, False, {"BT": 64, "BD": 32, "num_warps": 1, "num_stages": 3, "tma": True})
"""

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from ..backend import accumulation_dtype
from .triton import _TRITON_DTYPE, COPY_ENGINE_BD, _combine, _row, check_real

COPY_BYTES = 16
"""The copy engine's alignment: every stride but the last, and each tile's row, a multiple of 16 bytes."""


@triton.jit(do_not_specialize=["T"])
def _copy_engine_fwd_kernel(
    a_desc, x_desc, h_desc, h0_ptr, ht_ptr, T, D,
    BT: tl.constexpr, BD: tl.constexpr, STAGES: tl.constexpr, HAS_H0: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    pid_d, b = tl.program_id(0), tl.program_id(1)
    offs_d = pid_d * BD + tl.arange(0, BD)
    mask_d = offs_d < D
    state = b * D + offs_d
    if HAS_H0:
        carry = tl.load(h0_ptr + state, mask=mask_d, other=0.0).to(ACC)
    else:
        carry = tl.zeros([BD], dtype=ACC)
    rows = tl.arange(0, BT)
    for i in tl.range(0, tl.cdiv(T, BT), num_stages=STAGES):
        a = a_desc.load([b, i * BT, pid_d * BD]).reshape(BT, BD).to(ACC)
        x = x_desc.load([b, i * BT, pid_d * BD]).reshape(BT, BD).to(ACC)
        a, x = tl.associative_scan((a, x), 0, _combine)
        h = x + a * carry[None, :]
        h_desc.store([b, i * BT, pid_d * BD], h.to(h_desc.dtype).reshape(1, BT, BD))
        carry = _row(h, rows, tl.minimum(BT - 1, T - 1 - i * BT))
    tl.store(ht_ptr + state, carry, mask=mask_d)


def copy_engine_fits(a: torch.Tensor, x: torch.Tensor, block_d: int) -> bool:
    """Whether ``a`` and ``x [B, T, D]`` (contiguous) meet the copy engine's alignment with ``block_d`` channels a
    tile: rows, tile rows and both base addresses on 16 bytes."""
    return (
        (x.shape[-1] * x.element_size()) % COPY_BYTES == 0
        and (block_d * x.element_size()) % COPY_BYTES == 0
        and a.data_ptr() % COPY_BYTES == 0
        and x.data_ptr() % COPY_BYTES == 0
    )


def copy_engine_takes(a: torch.Tensor, x: torch.Tensor, reverse: bool) -> bool:
    """Whether the default forward may go through the copy engine: real inputs in time order on a GPU that has
    one (sm_90 and later), aligned for the tiles ``launch_config`` gives it."""
    return (
        x.is_cuda
        and not x.is_complex()
        and not reverse
        and torch.cuda.get_device_capability(x.device) >= (9, 0)
        and copy_engine_fits(a, x, min(COPY_ENGINE_BD, triton.next_power_of_2(x.shape[-1])))
    )


def linear_scan_copy_engine_fwd(
    a: torch.Tensor, x: torch.Tensor, initial_state: torch.Tensor | None, reverse: bool, cfg: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward of ``linear_scan_triton_fwd`` for a config with ``"tma": True`` (``BT``, ``BD``, ``num_warps``,
    ``num_stages``). Returns ``h [B, T, D]`` in ``x``'s dtype and the final state ``[B, D]`` in the accumulation
    dtype."""
    check_real("the copy-engine kernels", x)
    if reverse:
        raise ValueError("the copy-engine forward walks time in order; reverse scans use the per-sequence kernels")
    if not copy_engine_fits(a, x, cfg["BD"]):
        raise ValueError(
            f"the copy engine needs D * itemsize, BD * itemsize and the addresses of a and x to be multiples of "
            f"{COPY_BYTES} bytes, got D = {x.shape[-1]}, BD = {cfg['BD']} at {x.element_size()} bytes, addresses "
            f"{a.data_ptr() % COPY_BYTES} and {x.data_ptr() % COPY_BYTES} past a multiple"
        )
    batch, steps, width = x.shape
    acc = accumulation_dtype(x.dtype)
    h = torch.empty_like(x)
    final_state = torch.empty(batch, width, dtype=acc, device=x.device)
    block = [1, cfg["BT"], cfg["BD"]]
    descriptors = [TensorDescriptor.from_tensor(t, block) for t in (a, x, h)]
    _copy_engine_fwd_kernel[(triton.cdiv(width, cfg["BD"]), batch)](
        *descriptors, initial_state, final_state, steps, width, BT=cfg["BT"], BD=cfg["BD"],
        STAGES=cfg["num_stages"], HAS_H0=initial_state is not None, ACC=_TRITON_DTYPE[acc],
        num_warps=cfg["num_warps"],
    )  # fmt: skip
    return h, final_state
