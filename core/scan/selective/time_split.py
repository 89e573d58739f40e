"""Inference on long sequences with few channels: the fused scan cut in time and run piece by piece side by side.

The fused kernels give each program the whole time axis of a block of channels. With few sequences and channels
(Vim at 1024 px: 8 images x 384 channels, 4097 steps) that leaves most of the GPU idle while each program walks
thousands of dependent steps. Without gradients the scan splits in time:

1. Every piece of ``L`` steps (the last one shorter) is scanned from a zero state, in place in ``[B, T, D]`` (the
   kernel takes the piece length: no padded copies), to its final state ``F_s``, summing its steps' ``dt``
   (after bias and softplus) on the way; this pass writes no output.
2. The states entering the pieces follow from ``H_{s+1} = exp(A Σ_{t in s} dt_t) H_s + F_s`` (in processing
   order), ``H_0`` the initial state: one ``linear_scan`` over the ``S`` pieces.
3. Every piece is scanned again from ``H_s``, writing the outputs; the last piece's final state is the scan's.

About twice the work of one scan, ``S`` times the programs. ``pieces_for`` chooses ``S``.
"""

import math

import torch

from ..linear import linear_scan
from .op import selective_scan_pieces_fwd

MIN_PIECE = 128  # steps: below this the second pass's overhead outweighs the parallelism
TARGET_PROGRAMS = 4096  # one-warp programs: an H100 holds 32 an SM (4,224) where registers allow (N <= 4)


def pieces_for(batch: int, channels: int, steps: int, block_channels: int) -> int:
    """How many pieces to cut ``steps`` into so that ``batch * ceil(channels / block_channels)`` programs become
    about ``TARGET_PROGRAMS``, each piece at least ``MIN_PIECE`` steps; 1 means no split."""
    programs = batch * math.ceil(channels / block_channels)
    return max(1, min(TARGET_PROGRAMS // max(programs, 1), steps // MIN_PIECE))


def selective_scan_time_split(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, reverse, pieces
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused forward (no checkpoints) in about ``pieces`` time pieces of ``ceil(T / pieces)`` steps; arguments
    as ``selective_scan_fwd``'s (contiguous, ``initial_state`` float32 or None). Returns ``y [B, T, D]`` and the
    final state ``[B, D, N]``."""
    batch, steps, channels = u.shape
    piece_len = math.ceil(steps / pieces)
    pieces = math.ceil(steps / piece_len)
    _, local_final, dt_sums = selective_scan_pieces_fwd(
        u, dt, A, B, C, None, None, dt_bias, dt_softplus, None, reverse, piece_len, True
    )
    decays = torch.exp(dt_sums.view(batch, pieces, channels, 1) * A.float())  # [B, S, D, N]
    local_final = local_final.view(batch, pieces, channels, -1)
    leaving, state = linear_scan(decays, local_final, initial_state, output_final_state=True, reverse=reverse)
    first = torch.zeros_like(local_final[:, :1]) if initial_state is None else initial_state[:, None]
    entering = torch.cat([leaving[:, 1:], first], 1) if reverse else torch.cat([first, leaving[:, :-1]], 1)
    y, _, _ = selective_scan_pieces_fwd(
        u, dt, A, B, C, D, z, dt_bias, dt_softplus, entering.view(batch * pieces, channels, -1), reverse,
        piece_len, False,
    )  # fmt: skip
    return y, state
