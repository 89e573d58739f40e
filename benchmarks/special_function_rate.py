"""The GPU's rate of ``tl.exp2``, measured: the special-function floor of the scans' exponentials.

A selective scan takes one exponential a state and step (``exp(dt A)``), and the backward takes it again when it
replays a tile. Exponentials, logarithms and reciprocals run on the special-function units, which issue a sixteenth
of the FP32 rate on Hopper, so a scan can be bound by them long before it is bound by memory. The kernel here times
that rate in the same run as the kernels it judges: every thread runs independent chains ``x <- exp2(-x)`` (bounded
in [1/2, 1] from x in [0, 1]) on values that stay in registers, so nothing but the exponentials takes time.

    lrnn bench selective_scan   (prints each shape's floor of exponentials beside its memory floor)
"""

import torch
import triton
import triton.language as tl

BLOCK = 1024  # values a program: 8 independent chains a thread at 4 warps
ROUNDS = 1024  # exponentials a chain
UNROLL = 8  # exponentials a loop iteration


@triton.jit
def _exp2_chains_kernel(x_ptr, y_ptr, ROUNDS: tl.constexpr, UNROLL: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs)
    for _ in range(ROUNDS // UNROLL):
        for _ in tl.static_range(UNROLL):
            x = tl.exp2(-x)
    tl.store(y_ptr + offs, x)


def exp2_chains(x: torch.Tensor, rounds: int = ROUNDS) -> torch.Tensor:
    """``x <- exp2(-x)`` ``rounds`` times (a multiple of ``UNROLL``), elementwise; ``x`` contiguous float32 of a
    multiple of ``BLOCK`` elements."""
    if x.dtype != torch.float32 or not x.is_contiguous() or x.numel() % BLOCK or rounds % UNROLL:
        raise ValueError(
            f"exp2_chains takes contiguous float32 of a multiple of {BLOCK} elements and rounds a multiple of "
            f"{UNROLL}, got {x.dtype}, {x.numel()} elements, contiguous={x.is_contiguous()}, rounds={rounds}"
        )
    y = torch.empty_like(x)
    _exp2_chains_kernel[(x.numel() // BLOCK,)](x, y, ROUNDS=rounds, UNROLL=UNROLL, BLOCK=BLOCK, num_warps=4)
    return y


def exp2_rate(device: torch.device, programs_per_sm: int = 32) -> float:
    """``tl.exp2`` evaluations per second on ``device``: ``programs_per_sm`` programs of ``BLOCK`` chains on every
    SM, ``ROUNDS`` exponentials each, the median of timed runs."""
    from .scan import median_ms

    programs = programs_per_sm * torch.cuda.get_device_properties(device).multi_processor_count
    x = torch.rand(programs * BLOCK, device=device)
    return x.numel() * ROUNDS / (median_ms(lambda: exp2_chains(x)) * 1e-3)
