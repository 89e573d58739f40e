"""``linear_scan``'s Triton face split over time: one program per tile, joined by a decoupled look-back.

The kernels of ``triton.py`` give each program ``BD`` channels of one sequence and walk all of time, so a
problem with few channels (``B * D`` of a few thousand) runs too few programs to keep the GPU's memory busy.
Here every ``[BT, BD]`` tile is its own program, and the carry between tiles goes through a small buffer
instead of registers (Merrill and Garland's single-pass scan with decoupled look-back):

1. the program scans its tile from a zero carry and publishes the tile's aggregate ``(prod a, h_end)``
   (status 1), or, for the first tile of its sequence, the state after it (status 2, *inclusive*);
2. it walks back over its predecessors' tiles, folding their aggregates, until one is inclusive: that gives the
   state entering its tile;
3. it publishes its own inclusive state (status 2) and writes ``h`` from the tile and the carry.

Memory traffic stays one pass (read ``a, x``, write ``h``; the backward its five streams), plus two or three
``BD``-vectors a tile. Programs take their tile from an atomic ticket in launch order, time slowest, so a
program only ever waits for tiles whose programs have already started: no deadlock whatever order the GPU
schedules programs in. Real inputs only; complex ones use ``triton.py``.
"""

import torch
import triton
import triton.language as tl

from ..backend import accumulation_dtype
from .triton import _TRITON_DTYPE, LOOKBACK_TILES, _bwd_tile_loads, _combine, _program_block, _row, _tile, check_real

LOOKBACK_CONFIG = LOOKBACK_TILES["fwd"]
"""The forward's tile, which the tests and ``kernel_sass`` use for both directions."""
_AGGREGATE = tl.constexpr(1)
_INCLUSIVE = tl.constexpr(2)


@triton.jit
def _take_ticket(ticket_ptr, B, T, D, BT: tl.constexpr, BD: tl.constexpr):
    """This program's tile: ``(i, pid_d, pid_b, column, n_tiles, n_columns)``, ``i`` counting tiles in the order
    the scan visits them and ``column`` numbering the ``(sequence, channel block)`` pairs."""
    ticket = tl.atomic_add(ticket_ptr, 1, sem="relaxed")
    n_blocks = tl.cdiv(D, BD)
    n_columns = n_blocks * B
    column = ticket % n_columns
    return ticket // n_columns, column % n_blocks, column // n_blocks, column, tl.cdiv(T, BT), n_columns


@triton.jit
def _raise_flag(flag_ptr, slot, STATUS: tl.constexpr):
    """Make this program's stores visible, then set the slot's flag to ``STATUS``."""
    tl.debug_barrier()
    tl.atomic_xchg(flag_ptr + slot, STATUS, sem="release")


@triton.jit
def _state_entering(flag_ptr, aggregate_ptr, inclusive_ptr, i, column, n_columns, start, BD: tl.constexpr):
    """The state entering tile ``i`` of ``column``: ``start`` for the first tile, else the predecessors'
    aggregates folded back to the nearest inclusive state (``h = a_acc * inclusive + x_acc``)."""
    offs = tl.arange(0, BD)
    a_acc = tl.full([BD], 1.0, start.dtype)
    x_acc = tl.zeros([BD], start.dtype)
    carry = start
    k = i - 1
    while k >= 0:
        slot = k * n_columns + column
        status = tl.atomic_add(flag_ptr + slot, 0, sem="acquire")
        while status == 0:
            status = tl.atomic_add(flag_ptr + slot, 0, sem="acquire")
        if status == _INCLUSIVE:
            carry = a_acc * tl.load(inclusive_ptr + slot * BD + offs, cache_modifier=".cg") + x_acc
            k = -1
        else:
            x_acc += a_acc * tl.load(aggregate_ptr + (2 * slot + 1) * BD + offs, cache_modifier=".cg")
            a_acc *= tl.load(aggregate_ptr + 2 * slot * BD + offs, cache_modifier=".cg")
            k -= 1
    return carry


@triton.jit
def _join(flag_ptr, aggregate_ptr, inclusive_ptr, i, column, n_columns, scanned_a, scanned_x, rows, start,
          BT: tl.constexpr, BD: tl.constexpr):  # fmt: skip
    """Steps 1-3 of the module docstring for a tile scanned from zero (``scanned_a, scanned_x [BT, BD]``):
    returns the tile's states and the state after it."""
    slot = i * n_columns + column
    total_a = _row(scanned_a, rows, BT - 1)
    total_x = _row(scanned_x, rows, BT - 1)
    offs = tl.arange(0, BD)
    if i > 0:
        tl.store(aggregate_ptr + 2 * slot * BD + offs, total_a, cache_modifier=".cg")
        tl.store(aggregate_ptr + (2 * slot + 1) * BD + offs, total_x, cache_modifier=".cg")
        _raise_flag(flag_ptr, slot, _AGGREGATE)
    carry = _state_entering(flag_ptr, aggregate_ptr, inclusive_ptr, i, column, n_columns, start, BD)
    after = total_x + total_a * carry
    tl.store(inclusive_ptr + slot * BD + offs, after, cache_modifier=".cg")
    _raise_flag(flag_ptr, slot, _INCLUSIVE)
    return scanned_x + scanned_a * carry[None, :], after


@triton.jit(do_not_specialize=["T"])
def _lookback_fwd_kernel(
    a_ptr, x_ptr, h_ptr, h0_ptr, ht_ptr, ticket_ptr, flag_ptr, aggregate_ptr, inclusive_ptr, B, T, D,
    BT: tl.constexpr, BD: tl.constexpr, REVERSE: tl.constexpr, HAS_H0: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    i, pid_d, pid_b, column, n_tiles, n_columns = _take_ticket(ticket_ptr, B, T, D, BT, BD)
    offs_d, mask_d, rows, base, state = _program_block(pid_d, pid_b, T, D, 1, BT, BD)
    start = tl.zeros([BD], ACC)
    if HAS_H0:
        start = tl.load(h0_ptr + state, mask=mask_d, other=0.0).to(ACC)
    _, offs, mask = _tile(i, n_tiles, base, rows, offs_d, mask_d, T, D, 1, BT, REVERSE)
    a = tl.load(a_ptr + offs, mask=mask, other=1.0).to(ACC)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    a, x = tl.associative_scan((a, x), 0, _combine)
    h, after = _join(flag_ptr, aggregate_ptr, inclusive_ptr, i, column, n_columns, a, x, rows, start, BT, BD)
    tl.store(h_ptr + offs, h.to(h_ptr.dtype.element_ty), mask=mask)
    if i == n_tiles - 1:
        tl.store(ht_ptr + state, after, mask=mask_d)


@triton.jit(do_not_specialize=["T"])
def _lookback_bwd_kernel(
    a_ptr, h_ptr, h0_ptr, dh_ptr, dht_ptr, da_ptr, dx_ptr, dh0_ptr, ticket_ptr, flag_ptr, aggregate_ptr,
    inclusive_ptr, B, T, D,
    BT: tl.constexpr, BD: tl.constexpr, REVERSE: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr,
    ACC: tl.constexpr,
):  # fmt: skip
    # g_t = dh_t + a_{t+s} g_{t+s} against the forward direction s = ±1; dx_t = g_t, da_t = g_t h_{t-s}.
    S: tl.constexpr = -1 if REVERSE else 1
    i, pid_d, pid_b, column, n_tiles, n_columns = _take_ticket(ticket_ptr, B, T, D, BT, BD)
    offs_d, mask_d, rows, base, state = _program_block(pid_d, pid_b, T, D, 1, BT, BD)
    start = tl.zeros([BD], ACC)
    if HAS_DHT:
        start = tl.load(dht_ptr + state, mask=mask_d, other=0.0).to(ACC)
    offs_t, offs, mask = _tile(i, n_tiles, base, rows, offs_d, mask_d, T, D, 1, BT, not REVERSE)
    c, g, p = _bwd_tile_loads(a_ptr, h_ptr, dh_ptr, offs_t, offs, mask, T, D, 1, S, 1.0)
    p = p.to(ACC)
    if HAS_H0:
        at_start = ((offs_t - S < 0) | (offs_t - S >= T))[:, None]
        p = tl.where(at_start, tl.load(h0_ptr + state, mask=mask_d, other=0.0).to(ACC)[None, :], p)
    c, g = tl.associative_scan((c.to(ACC), g.to(ACC)), 0, _combine)
    g, after = _join(flag_ptr, aggregate_ptr, inclusive_ptr, i, column, n_columns, c, g, rows, start, BT, BD)
    tl.store(dx_ptr + offs, g.to(dx_ptr.dtype.element_ty), mask=mask)
    tl.store(da_ptr + offs, (g * p).to(da_ptr.dtype.element_ty), mask=mask)
    if i == n_tiles - 1:
        first = base + (T - 1 if REVERSE else 0) * D + offs_d
        tl.store(dh0_ptr + state, tl.load(a_ptr + first, mask=mask_d, other=0.0).to(ACC) * after, mask=mask_d)


def _scratch(batch: int, steps: int, width: int, cfg: dict, acc: torch.dtype, device: torch.device):
    """The ticket and flags (zeroed, int32, the ticket first) and the aggregate ``[slots, 2, BD]`` and inclusive
    ``[slots, BD]`` buffers, one slot a tile."""
    slots = triton.cdiv(steps, cfg["BT"]) * batch * triton.cdiv(width, cfg["BD"])
    flags = torch.zeros(1 + slots, dtype=torch.int32, device=device)
    aggregate = torch.empty(slots, 2, cfg["BD"], dtype=acc, device=device)
    inclusive = torch.empty(slots, cfg["BD"], dtype=acc, device=device)
    return flags[:1], flags[1:], aggregate, inclusive, slots


def linear_scan_lookback_fwd(
    a: torch.Tensor, x: torch.Tensor, initial_state: torch.Tensor | None, reverse: bool, config: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward launch, the contract of ``triton.linear_scan_triton_fwd``; ``config`` gives ``BT, BD, num_warps``."""
    check_real("the look-back kernels", x)
    batch, steps, width = x.shape
    acc = accumulation_dtype(x.dtype)
    h = torch.empty_like(x)
    final_state = torch.empty(batch, width, dtype=acc, device=x.device)
    ticket, flags, aggregate, inclusive, tiles = _scratch(batch, steps, width, config, acc, x.device)
    _lookback_fwd_kernel[(tiles,)](
        a, x, h, initial_state, final_state, ticket, flags, aggregate, inclusive, batch, steps, width,
        BT=config["BT"], BD=config["BD"], REVERSE=reverse, HAS_H0=initial_state is not None,
        ACC=_TRITON_DTYPE[acc], num_warps=config["num_warps"],
    )  # fmt: skip
    return h, final_state


def linear_scan_lookback_bwd(
    a: torch.Tensor,
    h: torch.Tensor,
    initial_state: torch.Tensor | None,
    grad_h: torch.Tensor,
    grad_final_state: torch.Tensor | None,
    reverse: bool,
    config: dict,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward launch, the contract of ``triton.linear_scan_triton_bwd``."""
    check_real("the look-back kernels", h)
    batch, steps, width = h.shape
    acc = accumulation_dtype(h.dtype)
    da = torch.empty_like(a)
    dx = torch.empty_like(h)
    d_initial_state = torch.empty(batch, width, dtype=acc, device=h.device)
    ticket, flags, aggregate, inclusive, tiles = _scratch(batch, steps, width, config, acc, h.device)
    _lookback_bwd_kernel[(tiles,)](
        a, h, initial_state, grad_h, grad_final_state, da, dx, d_initial_state, ticket, flags, aggregate,
        inclusive, batch, steps, width, BT=config["BT"], BD=config["BD"], REVERSE=reverse,
        HAS_H0=initial_state is not None, HAS_DHT=grad_final_state is not None, ACC=_TRITON_DTYPE[acc],
        num_warps=config["num_warps"],
    )  # fmt: skip
    return da, dx, d_initial_state
