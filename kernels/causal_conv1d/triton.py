"""The Triton face of ``causal_conv1d``: one forward kernel and one backward kernel over ``[B, T, D]``.

Each program owns ``BD`` channels of one sequence. The forward writes a tile of ``BT`` steps from the ``W``
shifted input tiles it reads (the overlap of ``W-1`` rows stays in cache). The backward walks ``NT`` tiles of
time and, per tile, recomputes the pre-activation ``s`` where it needs ``silu'(s)`` (nothing is saved but the
inputs), writes ``dx = sum_k w_k ds_{t+W-1-k}`` and accumulates the weight and bias gradients of its channels
over its stretch of time; those per-program partial sums are added up in PyTorch (no atomics). The program of
the first stretch also writes the initial state's gradient (the same formula at the times ``-W+1 .. -1``).
``REVERSE`` (the anti-causal conv, no initial state) mirrors every time offset: tap ``k`` reads ``x_{t+W-1-k}`` and
``dx_t = sum_k w_k ds_{t-W+1+k}``, so nothing is flipped in memory.
Arithmetic is float32 (float64 for float64 inputs); ``x``, ``dy`` are canonical contiguous ``[B, T, D]``.
"""

import torch
import triton
import triton.language as tl

from .reference import accumulation_dtype

TORCH_TO_TRITON = {torch.float32: tl.float32, torch.float64: tl.float64}


def launch_config(direction: str) -> dict:
    """Tile sizes: ``BT`` steps by ``BD`` channels; the backward's programs each walk ``NT`` tiles of time."""
    if direction == "fwd":
        return {"BT": 64, "BD": 128, "num_warps": 4}
    return {"BT": 32, "BD": 128, "NT": 16, "num_warps": 4}


@triton.jit
def _load_input(x_ptr, h0_ptr, base, offs_t, offs_d, mask_d, b, T, D, W: tl.constexpr, HAS_H0: tl.constexpr, ACC):
    """The padded input at times ``offs_t`` ``[BT, BD]``: ``x`` for ``0 <= t < T``, the initial state (index
    ``W-1+t``) for ``-W+1 <= t < 0``, else 0."""
    in_x = (offs_t >= 0) & (offs_t < T)
    offs = base + offs_t.to(tl.int64)[:, None] * D + offs_d[None, :]
    v = tl.load(x_ptr + offs, mask=in_x[:, None] & mask_d[None, :], other=0.0).to(ACC)
    if HAS_H0:
        j = offs_t + (W - 1)
        in_h = (offs_t < 0) & (j >= 0)
        offs_h = (b * D + offs_d[None, :]) * (W - 1) + j[:, None]
        v += tl.load(h0_ptr + offs_h, mask=in_h[:, None] & mask_d[None, :], other=0.0).to(ACC)
    return v


@triton.jit
def _input_time(offs_t, k: tl.constexpr, W: tl.constexpr, REVERSE: tl.constexpr):
    """The times tap ``k`` reads for the outputs at ``offs_t``: ``t-W+1+k``, or ``t+W-1-k`` with ``REVERSE``."""
    return offs_t + (W - 1 - k) if REVERSE else offs_t - (W - 1 - k)


@triton.jit
def _output_time(offs_t, k: tl.constexpr, W: tl.constexpr, REVERSE: tl.constexpr):
    """The times of the outputs whose tap ``k`` reads the inputs at ``offs_t`` (``_input_time`` inverted)."""
    return offs_t - (W - 1 - k) if REVERSE else offs_t + (W - 1 - k)


@triton.jit
def _preactivation(x_ptr, w_ptr, bias_ptr, h0_ptr, base, offs_t, offs_d, mask_d, b, T, D, W: tl.constexpr,
                   HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, REVERSE: tl.constexpr, ACC, BT: tl.constexpr,
                   BD: tl.constexpr):  # fmt: skip
    """``s_t = bias + sum_k w_k x_{t-W+1+k}`` (``x_{t+W-1-k}`` with ``REVERSE``) at times ``offs_t``, ``[BT, BD]``."""
    s = tl.zeros([BT, BD], dtype=ACC)
    if HAS_BIAS:
        s += tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)[None, :]
    for k in tl.static_range(W):
        w_k = tl.load(w_ptr + offs_d * W + k, mask=mask_d, other=0.0).to(ACC)
        x_k = _load_input(x_ptr, h0_ptr, base, _input_time(offs_t, k, W, REVERSE), offs_d, mask_d, b, T, D, W, HAS_H0,
                          ACC)  # fmt: skip
        s += w_k[None, :] * x_k
    return s


@triton.jit
def _grad_preactivation(x_ptr, w_ptr, bias_ptr, h0_ptr, dy_ptr, base, offs_t, offs_d, mask_d, b, T, D,
                        W: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, SILU: tl.constexpr,
                        REVERSE: tl.constexpr, ACC, BT: tl.constexpr, BD: tl.constexpr):  # fmt: skip
    """``ds_t = dy_t * act'(s_t)`` at times ``offs_t`` (0 outside ``[0, T)``), ``[BT, BD]``."""
    in_t = (offs_t >= 0) & (offs_t < T)
    offs = base + offs_t.to(tl.int64)[:, None] * D + offs_d[None, :]
    ds = tl.load(dy_ptr + offs, mask=in_t[:, None] & mask_d[None, :], other=0.0).to(ACC)
    if SILU:
        s = _preactivation(x_ptr, w_ptr, bias_ptr, h0_ptr, base, offs_t, offs_d, mask_d, b, T, D, W, HAS_BIAS, HAS_H0,
                           REVERSE, ACC, BT, BD)  # fmt: skip
        sig = 1.0 / (1.0 + tl.exp(-s))
        ds = ds * sig * (1.0 + s * (1.0 - sig))
    return ds


@triton.jit
def _grad_input(x_ptr, w_ptr, bias_ptr, h0_ptr, dy_ptr, base, offs_t, offs_d, mask_d, b, T, D, W: tl.constexpr,
                HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, SILU: tl.constexpr, REVERSE: tl.constexpr, ACC,
                BT: tl.constexpr, BD: tl.constexpr):  # fmt: skip
    """``dx_t = sum_k w_k ds_{t+W-1-k}`` (``ds_{t-W+1+k}`` with ``REVERSE``) at times ``offs_t`` (negative times give
    the initial state's gradient)."""
    dx = tl.zeros([BT, BD], dtype=ACC)
    for k in tl.static_range(W):
        w_k = tl.load(w_ptr + offs_d * W + k, mask=mask_d, other=0.0).to(ACC)
        ds = _grad_preactivation(x_ptr, w_ptr, bias_ptr, h0_ptr, dy_ptr, base, _output_time(offs_t, k, W, REVERSE),
                                 offs_d, mask_d, b, T, D, W, HAS_BIAS, HAS_H0, SILU, REVERSE, ACC, BT, BD)  # fmt: skip
        dx += w_k[None, :] * ds
    return dx


@triton.jit(do_not_specialize=["T"])
def _causal_conv1d_fwd_kernel(
    x_ptr, w_ptr, bias_ptr, h0_ptr, y_ptr, T, D,
    W: tl.constexpr, BT: tl.constexpr, BD: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr,
    SILU: tl.constexpr, REVERSE: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(2).to(tl.int64)
    offs_t = tl.program_id(0) * BT + tl.arange(0, BT)
    offs_d = tl.program_id(1) * BD + tl.arange(0, BD)
    mask_d = offs_d < D
    base = b * T * D
    s = _preactivation(x_ptr, w_ptr, bias_ptr, h0_ptr, base, offs_t, offs_d, mask_d, b, T, D, W, HAS_BIAS, HAS_H0,
                       REVERSE, ACC, BT, BD)  # fmt: skip
    if SILU:
        s = s / (1.0 + tl.exp(-s))
    offs = base + offs_t.to(tl.int64)[:, None] * D + offs_d[None, :]
    tl.store(y_ptr + offs, s.to(y_ptr.dtype.element_ty), mask=(offs_t < T)[:, None] & mask_d[None, :])


@triton.jit(do_not_specialize=["T"])
def _causal_conv1d_bwd_kernel(
    x_ptr, w_ptr, bias_ptr, h0_ptr, dy_ptr, dx_ptr, dw_ptr, db_ptr, dh0_ptr, T, D,
    W: tl.constexpr, WP: tl.constexpr, BT: tl.constexpr, BD: tl.constexpr, NT: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, SILU: tl.constexpr, REVERSE: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    pid_c = tl.program_id(0)
    b = tl.program_id(2).to(tl.int64)
    offs_d = tl.program_id(1) * BD + tl.arange(0, BD)
    mask_d = offs_d < D
    rows = tl.arange(0, BT)
    cols = tl.arange(0, WP)
    base = b * T * D
    dw = tl.zeros([BD, WP], dtype=ACC)
    db = tl.zeros([BD], dtype=ACC)
    for i in range(NT):
        offs_t = (pid_c * NT + i) * BT + rows
        ds = _grad_preactivation(x_ptr, w_ptr, bias_ptr, h0_ptr, dy_ptr, base, offs_t, offs_d, mask_d, b, T, D, W,
                                 HAS_BIAS, HAS_H0, SILU, REVERSE, ACC, BT, BD)  # fmt: skip
        db += tl.sum(ds, axis=0)
        for k in tl.static_range(W):
            x_k = _load_input(x_ptr, h0_ptr, base, _input_time(offs_t, k, W, REVERSE), offs_d, mask_d, b, T, D, W,
                              HAS_H0, ACC)  # fmt: skip
            dw += tl.where(cols[None, :] == k, tl.sum(ds * x_k, axis=0)[:, None], 0.0)
        dx = _grad_input(x_ptr, w_ptr, bias_ptr, h0_ptr, dy_ptr, base, offs_t, offs_d, mask_d, b, T, D, W, HAS_BIAS,
                         HAS_H0, SILU, REVERSE, ACC, BT, BD)  # fmt: skip
        offs = base + offs_t.to(tl.int64)[:, None] * D + offs_d[None, :]
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=(offs_t < T)[:, None] & mask_d[None, :])
    partial = (pid_c * tl.num_programs(2) + b) * D + offs_d
    tl.store(db_ptr + partial, db, mask=mask_d)
    tl.store(dw_ptr + partial[:, None] * W + cols[None, :], dw, mask=mask_d[:, None] & (cols < W)[None, :])
    if HAS_H0:
        if pid_c == 0:
            offs_t = rows - BT
            dh0 = _grad_input(x_ptr, w_ptr, bias_ptr, h0_ptr, dy_ptr, base, offs_t, offs_d, mask_d, b, T, D, W,
                              HAS_BIAS, HAS_H0, SILU, REVERSE, ACC, BT, BD)  # fmt: skip
            j = offs_t + (W - 1)
            offs_h = (b * D + offs_d[None, :]) * (W - 1) + j[:, None]
            tl.store(dh0_ptr + offs_h, dh0, mask=(j >= 0)[:, None] & mask_d[None, :])


def _tiles(direction: str, width: int) -> dict:
    config = dict(launch_config(direction))
    config["BT"] = max(config["BT"], triton.next_power_of_2(max(width - 1, 1)))
    return config


def causal_conv1d_triton_fwd(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    silu: bool,
    reverse: bool,
) -> torch.Tensor:
    """``y [B, T, D]`` in ``x``'s dtype; all tensors contiguous, ``initial_state`` None when ``W = 1`` or reversed."""
    batch, steps, channels = x.shape
    width = weight.shape[1]
    config = _tiles("fwd", width)
    y = torch.empty_like(x)
    grid = (triton.cdiv(steps, config["BT"]), triton.cdiv(channels, config["BD"]), batch)
    _causal_conv1d_fwd_kernel[grid](
        x, weight, bias if bias is not None else weight, initial_state if initial_state is not None else x, y,
        steps, channels, W=width, BT=config["BT"], BD=config["BD"], HAS_BIAS=bias is not None,
        HAS_H0=initial_state is not None, SILU=silu, REVERSE=reverse, ACC=TORCH_TO_TRITON[accumulation_dtype(x.dtype)],
        num_warps=config["num_warps"],
    )  # fmt: skip
    return y


def causal_conv1d_triton_bwd(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    grad_y: torch.Tensor,
    silu: bool,
    reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(dx, dweight, dbias, d_initial_state)`` in the dtypes of ``x``, ``weight``, ``bias``, ``initial_state``."""
    batch, steps, channels = x.shape
    width = weight.shape[1]
    acc = accumulation_dtype(x.dtype)
    config = _tiles("bwd", width)
    chunks = triton.cdiv(steps, config["BT"] * config["NT"])
    dx = torch.empty_like(x)
    dw = x.new_empty((chunks, batch, channels, width), dtype=acc)
    db = x.new_empty((chunks, batch, channels), dtype=acc)
    dh0 = None if initial_state is None else torch.empty_like(initial_state, dtype=acc)
    grid = (chunks, triton.cdiv(channels, config["BD"]), batch)
    _causal_conv1d_bwd_kernel[grid](
        x, weight, bias if bias is not None else weight, initial_state if initial_state is not None else x,
        grad_y, dx, dw, db, dh0 if dh0 is not None else dx, steps, channels,
        W=width, WP=triton.next_power_of_2(width), BT=config["BT"], BD=config["BD"], NT=config["NT"],
        HAS_BIAS=bias is not None, HAS_H0=initial_state is not None, SILU=silu, REVERSE=reverse,
        ACC=TORCH_TO_TRITON[acc],
        num_warps=config["num_warps"],
    )  # fmt: skip
    dbias = None if bias is None else db.sum((0, 1)).to(bias.dtype)
    d_initial_state = None if dh0 is None else dh0.to(initial_state.dtype)
    return dx, dw.sum((0, 1)).to(weight.dtype), dbias, d_initial_state
