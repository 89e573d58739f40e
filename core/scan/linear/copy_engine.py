"""``linear_scan`` with its tiles brought in by Hopper's copy engine (TMA): the default bfloat16 forward on sm_90 and
later; float16 and the backward by a launch config with ``"tma": True`` (benchmarks/NOTES.md, v10 and v11).

The kernels of ``triton.py`` prefetch the next ``[BT, BD]`` tile of every stream into registers while they scan the
current one: one tile in flight a program, paid for in registers (210 a thread in the bf16 forward at BT 64 / BD
32, so at most 8 one-warp programs an SM). Here the loads go through tensor descriptors in a loop pipelined over
``num_stages``: the copy engine writes the next ``num_stages - 1`` tiles into shared memory while the program scans,
with no registers held for them, and the outputs leave through the same engine. Real inputs, time in order. Rows
outside the sequence arrive zero-filled and are not stored: the forward reads its carry at the last real row; the
backward loads ``a`` a row ahead and ``h`` a row behind by shifting the tile's first row (the initial state and a
unit coefficient take the rows outside), and scans each tile flipped, so that its scan runs forward over the rows
as in ``triton.py``.

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


@triton.jit(do_not_specialize=["T"])
def _copy_engine_bwd_kernel(
    a_desc, h_desc, dh_desc, dx_desc, da_desc, a_ptr, h0_ptr, dht_ptr, dh0_ptr, T, D,
    BT: tl.constexpr, BD: tl.constexpr, STAGES: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr,
    ACC: tl.constexpr,
):  # fmt: skip
    # g_t = dh_t + a_{t+1} g_{t+1} from the end, dx_t = g_t, da_t = g_t h_{t-1}; the carry is g at the tile's first row.
    pid_d, b = tl.program_id(0), tl.program_id(1)
    offs_d = pid_d * BD + tl.arange(0, BD)
    mask_d = offs_d < D
    state = b * D + offs_d
    carry = tl.zeros([BD], dtype=ACC)
    if HAS_DHT:
        carry = tl.load(dht_ptr + state, mask=mask_d, other=0.0).to(ACC)
    start = tl.zeros([BD], dtype=ACC)
    if HAS_H0:
        start = tl.load(h0_ptr + state, mask=mask_d, other=0.0).to(ACC)
    rows = tl.arange(0, BT)
    n_tiles = tl.cdiv(T, BT)
    for k in tl.range(0, n_tiles, num_stages=STAGES):
        first = (n_tiles - 1 - k) * BT
        coefficient = a_desc.load([b, first + 1, pid_d * BD]).reshape(BT, BD).to(ACC)
        grad = dh_desc.load([b, first, pid_d * BD]).reshape(BT, BD).to(ACC)
        previous = h_desc.load([b, first - 1, pid_d * BD]).reshape(BT, BD).to(ACC)
        steps = first + rows
        coefficient = tl.where((steps + 1 >= T)[:, None], 1.0, coefficient)  # the end passes the carry on whole
        previous = tl.where((steps == 0)[:, None], start[None, :], previous)
        c, g = tl.associative_scan((tl.flip(coefficient, 0), tl.flip(grad, 0)), 0, _combine)
        g = g + c * carry[None, :]
        carry = _row(g, rows, BT - 1)
        g = tl.flip(g, 0)
        dx_desc.store([b, first, pid_d * BD], g.to(dx_desc.dtype).reshape(1, BT, BD))
        da_desc.store([b, first, pid_d * BD], (g * previous).to(da_desc.dtype).reshape(1, BT, BD))
    a_first = tl.load(a_ptr + b.to(tl.int64) * T * D + offs_d, mask=mask_d, other=0.0).to(ACC)
    tl.store(dh0_ptr + state, a_first * carry, mask=mask_d)


def copy_engine_fits(block_d: int, *tensors: torch.Tensor) -> bool:
    """Whether ``tensors [B, T, D]`` (contiguous, one dtype) meet the copy engine's alignment with ``block_d``
    channels a tile: rows, tile rows and base addresses on 16 bytes."""
    size = tensors[0].element_size()
    return (
        (tensors[0].shape[-1] * size) % COPY_BYTES == 0
        and (block_d * size) % COPY_BYTES == 0
        and all(t.data_ptr() % COPY_BYTES == 0 for t in tensors)
    )


def copy_engine_takes(reverse: bool, *tensors: torch.Tensor) -> bool:
    """Whether the default launch may go through the copy engine: real ``tensors`` in time order on a GPU that
    has one (sm_90 and later), aligned for the tiles ``launch_config`` gives it."""
    x = tensors[0]
    return (
        x.is_cuda
        and not x.is_complex()
        and not reverse
        and torch.cuda.get_device_capability(x.device) >= (9, 0)
        and copy_engine_fits(min(COPY_ENGINE_BD, triton.next_power_of_2(x.shape[-1])), *tensors)
    )


def _check(cfg: dict, reverse: bool, **tensors: torch.Tensor) -> None:
    """Clear errors for what the copy-engine kernels cannot load."""
    x = next(iter(tensors.values()))
    check_real("the copy-engine kernels", x)
    if reverse:
        raise ValueError("the copy-engine kernels walk time in order; reverse scans use the per-sequence kernels")
    if not copy_engine_fits(cfg["BD"], *tensors.values()):
        addresses = ", ".join(f"{name} {t.data_ptr() % COPY_BYTES}" for name, t in tensors.items())
        raise ValueError(
            f"the copy engine needs D * itemsize, BD * itemsize and the addresses of {', '.join(tensors)} to be "
            f"multiples of {COPY_BYTES} bytes, got D = {x.shape[-1]}, BD = {cfg['BD']} at {x.element_size()} bytes, "
            f"addresses past a multiple: {addresses}"
        )


def _descriptors(cfg: dict, *tensors: torch.Tensor) -> list[TensorDescriptor]:
    return [TensorDescriptor.from_tensor(t, [1, cfg["BT"], cfg["BD"]]) for t in tensors]


def linear_scan_copy_engine_fwd(
    a: torch.Tensor, x: torch.Tensor, initial_state: torch.Tensor | None, reverse: bool, cfg: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward of ``linear_scan_triton_fwd`` for a config with ``"tma": True`` (``BT``, ``BD``, ``num_warps``,
    ``num_stages``). Returns ``h [B, T, D]`` in ``x``'s dtype and the final state ``[B, D]`` in the accumulation
    dtype."""
    _check(cfg, reverse, a=a, x=x)
    batch, steps, width = x.shape
    acc = accumulation_dtype(x.dtype)
    h = torch.empty_like(x)
    final_state = torch.empty(batch, width, dtype=acc, device=x.device)
    _copy_engine_fwd_kernel[(triton.cdiv(width, cfg["BD"]), batch)](
        *_descriptors(cfg, a, x, h), initial_state, final_state, steps, width, BT=cfg["BT"], BD=cfg["BD"],
        STAGES=cfg["num_stages"], HAS_H0=initial_state is not None, ACC=_TRITON_DTYPE[acc],
        num_warps=cfg["num_warps"],
    )  # fmt: skip
    return h, final_state


def linear_scan_copy_engine_bwd(
    a: torch.Tensor,
    h: torch.Tensor,
    initial_state: torch.Tensor | None,
    grad_h: torch.Tensor,
    grad_final_state: torch.Tensor | None,
    reverse: bool,
    cfg: dict,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backward of ``linear_scan_triton_bwd`` for a config with ``"tma": True``. Returns ``(da, dx,
    d_initial_state)``, the last in the accumulation dtype."""
    _check(cfg, reverse, a=a, h=h, grad_h=grad_h)
    batch, steps, width = h.shape
    acc = accumulation_dtype(h.dtype)
    da, dx = torch.empty_like(a), torch.empty_like(h)
    d_initial_state = torch.empty(batch, width, dtype=acc, device=h.device)
    _copy_engine_bwd_kernel[(triton.cdiv(width, cfg["BD"]), batch)](
        *_descriptors(cfg, a, h, grad_h, dx, da), a, initial_state, grad_final_state, d_initial_state, steps, width,
        BT=cfg["BT"], BD=cfg["BD"], STAGES=cfg["num_stages"], HAS_H0=initial_state is not None,
        HAS_DHT=grad_final_state is not None, ACC=_TRITON_DTYPE[acc], num_warps=cfg["num_warps"],
    )  # fmt: skip
    return da, dx, d_initial_state
