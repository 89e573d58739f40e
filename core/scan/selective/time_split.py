"""Inference on long sequences with few channels: the fused scan cut in time and run piece by piece side by side.

The fused kernels give each program the whole time axis of a block of channels. With few sequences and channels
(Vim at 1024 px: 8 images x 384 channels, 4097 steps) that leaves most of the GPU idle while each program walks
thousands of dependent steps. Without gradients the scan splits in time:

1. ``[B, T, D]`` is viewed as ``[B S, L, D]``, ``T`` padded to ``S L`` with steps that leave the state alone
   (``dt = 0`` after bias and softplus, ``u = 0``), and every piece is scanned from a zero state: ``F_s``.
2. The states entering the pieces follow from ``H_{s+1} = exp(A Σ_{t in s} dt_t) H_s + F_s`` (in processing
   order), ``H_0`` the initial state: one ``linear_scan`` over the ``S`` pieces.
3. Every piece is scanned again from ``H_s``; its outputs are the scan's, and the last piece's final state the
   scan's final state.

Twice the work of one scan, ``S`` times the programs. ``pieces_for`` chooses ``S``.
"""

import math

import torch

from ..linear import linear_scan
from .discretize import effective_dt
from .op import selective_scan_fwd

MIN_PIECE = 128  # steps: below this the second pass's overhead outweighs the parallelism
TARGET_PROGRAMS = 2048  # one-warp programs in flight on an H100 (132 SMs) with room to hide latency


def pieces_for(batch: int, channels: int, steps: int, block_channels: int) -> int:
    """How many pieces to cut ``steps`` into so that ``batch * ceil(channels / block_channels)`` programs become
    about ``TARGET_PROGRAMS``, each piece at least ``MIN_PIECE`` steps; 1 means no split."""
    programs = batch * math.ceil(channels / block_channels)
    return max(1, min(TARGET_PROGRAMS // max(programs, 1), steps // MIN_PIECE))


def _pad_time(t: torch.Tensor | None, length: int, value: float = 0.0) -> torch.Tensor | None:
    """``t [B, T, ...]`` padded along time to ``length`` with ``value``."""
    if t is None or t.shape[1] == length:
        return t
    pad = t.new_full((t.shape[0], length - t.shape[1], *t.shape[2:]), value)
    return torch.cat([t, pad], 1)


def _pieces(t: torch.Tensor | None, pieces: int) -> torch.Tensor | None:
    """``[B, S L, ...]`` viewed as ``[B S, L, ...]``."""
    return None if t is None else t.reshape(t.shape[0] * pieces, t.shape[1] // pieces, *t.shape[2:])


def selective_scan_time_split(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, reverse, pieces
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused forward (no checkpoints) in ``pieces`` time pieces; arguments as ``selective_scan_fwd``'s
    (contiguous, ``initial_state`` float32 or None). Returns ``y [B, T, D]`` and the final state ``[B, D, N]``."""
    batch, steps, channels = u.shape
    length = math.ceil(steps / pieces) * pieces
    # a padded step must have dt = 0 after the bias and softplus: softplus(-inf) = 0, or -bias without softplus
    dt_padded = _pad_time(dt, length, -math.inf if dt_softplus else 0.0)
    if not dt_softplus and dt_bias is not None and length > steps:
        dt_padded[:, steps:] = -dt_bias.to(dt.dtype)
    dt_split = _pieces(dt_padded, pieces)
    split = [_pieces(_pad_time(t, length), pieces) for t in (u, B, C, z)]
    u_s, B_s, C_s, z_s = split
    _, local_final, _ = selective_scan_fwd(
        u_s, dt_split, A, B_s, C_s, D, z_s, dt_bias, dt_softplus, None, reverse, False
    )
    step_sums = _pad_time(effective_dt(dt, dt_bias, dt_softplus, torch.float32), length)
    step_sums = step_sums.view(batch, pieces, -1, channels)
    decays = torch.exp(step_sums.sum(2)[..., None] * A.float())  # [B, S, D, N]
    local_final = local_final.view(batch, pieces, channels, -1)
    leaving, state = linear_scan(decays, local_final, initial_state, output_final_state=True, reverse=reverse)
    first = torch.zeros_like(local_final[:, :1]) if initial_state is None else initial_state[:, None]
    entering = torch.cat([leaving[:, 1:], first], 1) if reverse else torch.cat([first, leaving[:, :-1]], 1)
    y, _, _ = selective_scan_fwd(
        u_s, dt_split, A, B_s, C_s, D, z_s, dt_bias, dt_softplus, entering.view(batch * pieces, channels, -1),
        reverse, False,
    )  # fmt: skip
    return y.view(batch, length, channels)[:, :steps], state
