"""The MusicGen delay pattern over ``q`` codebooks, with codec indices shifted past the special ids.

Codebook ``i`` is delayed by ``i`` steps, so at step ``t`` the model predicts codebook ``i`` of frame
``t - i``: a coarse level is always emitted before the finer levels of the same frame.

    codes [q, T] (codec indices)  ->  apply_delay  ->  tokens [q, T + q - 1]
    tokens[i, t] = codes[i, t - i] + N_SPECIAL   for i <= t < T + i, and ``PAD`` elsewhere

``lina_delay`` is the training layout of Lina-Speech (``delay_rvq(code + 3, head_token=1, tail_token=2)``
in the authors' code): a BOS column, the delayed codes with BOS filling the delay before and EOS after each
codebook's tokens, and an EOS column, ``[q, T + q + 1]``. With one codebook this is ``[BOS, c_1 .. c_T, EOS]``.
Every codebook ends on EOS at the step after its last token, so "all codebooks emitted EOS" marks the end.
"""

import torch

from .special_tokens import BOS, EOS, N_SPECIAL, PAD


def _check_codes(codes: torch.Tensor) -> None:
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes must be [q, T] with q >= 1, got shape {tuple(codes.shape)}")
    if codes.dtype.is_floating_point or codes.dtype.is_complex:
        raise TypeError(f"codes must be integer codec indices, got dtype {codes.dtype}")
    if codes.numel() and int(codes.min()) < 0:
        raise ValueError(f"codes must be non-negative codec indices, got a minimum of {int(codes.min())}")


def apply_delay(codes: torch.Tensor, before: int = PAD, after: int = PAD) -> torch.Tensor:
    """Delay codebook ``i`` by ``i`` steps: ``codes [q, T]`` (int codec indices) -> ``tokens [q, T + q - 1]``
    (int64), each index shifted by ``N_SPECIAL``; ``before``/``after`` fill the slots before/after each
    codebook's tokens (both ``PAD`` in MusicGen)."""
    _check_codes(codes)
    q, frames = codes.shape
    tokens = torch.full((q, frames + q - 1), after, dtype=torch.long, device=codes.device)
    for level in range(q):
        tokens[level, :level] = before
        tokens[level, level : level + frames] = codes[level].long() + N_SPECIAL
    return tokens


def undo_delay(tokens: torch.Tensor) -> torch.Tensor:
    """Inverse of ``apply_delay``: ``tokens [q, T + q - 1]`` -> ``codes [q, T]`` codec indices (int64).

    Raises ``ValueError`` when an undelayed position holds a special id (the tokens are not a complete pattern).
    """
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] < tokens.shape[0] - 1:
        raise ValueError(f"tokens must be [q, T + q - 1] with q >= 1, got shape {tuple(tokens.shape)}")
    q, steps = tokens.shape
    frames = steps - q + 1
    codes = torch.stack([tokens[level, level : level + frames] for level in range(q)]).long() - N_SPECIAL
    if codes.numel() and int(codes.min()) < 0:
        raise ValueError("tokens hold a special id (pad, BOS or EOS) where a codec index belongs")
    return codes


def lina_delay(codes: torch.Tensor) -> torch.Tensor:
    """Lina-Speech's layout: ``codes [q, T]`` -> ``tokens [q, T + q + 1]`` = BOS column, ``apply_delay`` with
    BOS before and EOS after, EOS column."""
    delayed = apply_delay(codes, before=BOS, after=EOS)
    q = delayed.shape[0]
    bos = torch.full((q, 1), BOS, dtype=torch.long, device=codes.device)
    eos = torch.full((q, 1), EOS, dtype=torch.long, device=codes.device)
    return torch.cat([bos, delayed, eos], dim=1)


def lina_undelay(tokens: torch.Tensor) -> torch.Tensor:
    """Inverse of ``lina_delay``: ``tokens [q, T + q + 1]`` -> ``codes [q, T]``."""
    if tokens.ndim != 2 or tokens.shape[1] < tokens.shape[0] + 1:
        raise ValueError(f"tokens must be [q, T + q + 1], got shape {tuple(tokens.shape)}")
    return undo_delay(tokens[:, 1:-1])
