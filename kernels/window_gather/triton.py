"""The Triton face of the row gather ``out[i] = src[index[i]]`` over ``[rows, C]`` tensors, and its backward.

Forward: each program copies a tile of ``BR`` output rows by ``BC`` channels, reading the source rows named by
``index`` (int32 or int64). ``window_gather`` (index: the voxel at each slot) and ``window_scatter`` (index: the
slot of each voxel) are both this kernel.

Backward, without atomics: ``d_src[j] = sum over {i : index[i] = j} of d_out[i]`` is computed as a sum per
source row. A stable sort of ``index`` lists, for each source row ``j``, the output rows that read it (in
increasing order), from ``offsets[j]`` to ``offsets[j+1]`` (CSR form); each program owns ``BR`` source rows, adds
their lists' gradient rows in float32 (float64 for float64) and stores each row once. The scatter's backward is
the same kernel: a padding slot is read by no voxel, so its list is empty and its gradient zero.

Why a sort and not ``tl.atomic_add``, nor a real slot plus one padding copy per voxel: a sample with fewer voxels
than one group repeats its voxels until the group is full (one voxel can fill 4096 slots), so the number of terms
per voxel is not bounded. Atomics would add them in an order that changes from run to run and, for
bfloat16/float16, need a zeroed float32 ``[M, C]`` buffer and a cast (about five times the bytes of this pass).
The sort touches one integer per row, not ``C`` channels; the sum has a fixed order, so the gradient is
reproducible bit for bit and rounded once.
"""

import torch
import triton
import triton.language as tl

from ..causal_conv1d.reference import accumulation_dtype

TORCH_TO_TRITON = {torch.float32: tl.float32, torch.float64: tl.float64}


def launch_config(channels: int) -> dict:
    """Tile sizes: ``BR`` rows by ``BC`` channels (all of them up to 256), about 4096 elements per program."""
    block_c = min(triton.next_power_of_2(channels), 256)
    return {"BR": max(4096 // block_c, 1), "BC": block_c, "num_warps": 4}


@triton.jit(do_not_specialize=["rows"])
def _gather_rows_kernel(src_ptr, index_ptr, out_ptr, rows, C, BR: tl.constexpr, BC: tl.constexpr):
    """``out[i, c] = src[index[i], c]`` for the tile of rows ``i`` and channels ``c`` of this program."""
    offs_r = tl.program_id(0) * BR + tl.arange(0, BR)
    offs_c = tl.program_id(1) * BC + tl.arange(0, BC)
    mask_r = offs_r < rows
    mask = mask_r[:, None] & (offs_c < C)[None, :]
    source = tl.load(index_ptr + offs_r, mask=mask_r, other=0).to(tl.int64)
    values = tl.load(src_ptr + source[:, None] * C + offs_c[None, :], mask=mask)
    tl.store(out_ptr + offs_r.to(tl.int64)[:, None] * C + offs_c[None, :], values, mask=mask)


@triton.jit(do_not_specialize=["rows"])
def _segment_sum_kernel(grad_ptr, order_ptr, offsets_ptr, out_ptr, rows, C, BR: tl.constexpr, BC: tl.constexpr,
                        ACC: tl.constexpr):  # fmt: skip
    """``out[j, c] = sum_k grad[order[k], c]`` over ``offsets[j] <= k < offsets[j+1]``, for this program's tile.

    Every value is a ``[BR, 1]`` or ``[BR, BC]`` tile: with ``[BR]`` row vectors broadcast inside the loop, Triton
    3.6 fails to compile it for sm_90 (``TritonGPURemoveLayoutConversions``) once ``C`` is a multiple of 16."""
    offs_r = tl.program_id(0) * BR + tl.arange(0, BR)[:, None]
    offs_c = tl.program_id(1) * BC + tl.arange(0, BC)[None, :]
    mask_r = offs_r < rows
    mask_c = offs_c < C
    start = tl.load(offsets_ptr + offs_r, mask=mask_r, other=0)
    count = tl.load(offsets_ptr + offs_r + 1, mask=mask_r, other=0) - start
    acc = tl.zeros([BR, BC], dtype=ACC)
    for k in range(tl.max(tl.max(count, axis=1), axis=0)):
        live = k < count
        reader = tl.load(order_ptr + start + k, mask=live, other=0).to(tl.int64)
        acc += tl.load(grad_ptr + reader * C + offs_c, mask=live & mask_c, other=0.0).to(ACC)
    tl.store(out_ptr + offs_r.to(tl.int64) * C + offs_c, acc.to(out_ptr.dtype.element_ty), mask=mask_r & mask_c)


def _grid(rows: int, config: dict, channels: int) -> tuple[int, int]:
    return triton.cdiv(rows, config["BR"]), triton.cdiv(channels, config["BC"])


def gather_rows_triton(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``src [M, C]`` read at ``index [K]`` -> ``[K, C]`` in ``src``'s dtype; both contiguous, indices in range."""
    channels = src.shape[1]
    out = src.new_empty((index.shape[0], channels))
    if out.numel() > 0:
        config = launch_config(channels)
        _gather_rows_kernel[_grid(len(index), config, channels)](
            src, index, out, len(index), channels, BR=config["BR"], BC=config["BC"], num_warps=config["num_warps"]
        )
    return out


def gather_rows_triton_bwd(grad: torch.Tensor, index: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``d_src [num_rows, C]`` in ``grad``'s dtype from ``grad [K, C]`` (contiguous) and ``index [K]``: each source
    row sums the gradient rows that read it, in increasing order."""
    channels = grad.shape[1]
    keys, order = torch.sort(index, stable=True)
    offsets = torch.searchsorted(keys, torch.arange(num_rows + 1, dtype=keys.dtype, device=keys.device))
    out = grad.new_empty((num_rows, channels))
    if out.numel() > 0:
        config = launch_config(channels)
        _segment_sum_kernel[_grid(num_rows, config, channels)](
            grad, order, offsets, out, num_rows, channels, BR=config["BR"], BC=config["BC"],
            ACC=TORCH_TO_TRITON[accumulation_dtype(grad.dtype)], num_warps=config["num_warps"],
        )  # fmt: skip
    return out
