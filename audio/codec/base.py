"""The codec interface: 24 kHz waveforms <-> discrete codes at 75 frames/s over ``n_codebooks`` levels.

    encode(wav [T] or [B, T] float, 24 kHz, in [-1, 1]) -> codes [q, F] or [B, q, F] int64 in [0, codebook_size)
    decode(codes [q, F] or [B, q, F])                   -> wav [T'] or [B, T'] float, 24 kHz

Subclasses implement the batched forms ``_encode`` and ``_decode``; the public methods check shapes once and
add or drop the batch dimension. Each subclass documents its frame count ``F`` as a function of ``T``.
"""

from abc import ABC, abstractmethod

import torch
from torch import nn


class AudioCodec(nn.Module, ABC):
    """Base of every codec: ``sample_rate`` 24000 Hz, ``frame_rate`` 75 frames/s (``hop_length`` 320 samples)."""

    sample_rate = 24000
    frame_rate = 75
    hop_length = sample_rate // frame_rate

    @property
    @abstractmethod
    def n_codebooks(self) -> int:
        """Number of code levels ``q`` per frame."""

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Number of distinct codes per level."""

    @abstractmethod
    def _encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [B, T]`` float -> ``codes [B, q, F]`` int64."""

    @abstractmethod
    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, q, F]`` int64 -> ``wav [B, T']`` float."""

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [T]`` or ``[B, T]`` float at 24 kHz -> ``codes [q, F]`` or ``[B, q, F]`` int64."""
        if wav.ndim not in (1, 2) or wav.shape[-1] == 0:
            raise ValueError(f"wav must be [T] or [B, T] with T > 0, got shape {tuple(wav.shape)}")
        if not wav.is_floating_point():
            raise TypeError(f"wav must be floating point, got dtype {wav.dtype}")
        codes = self._encode(wav.reshape(-1, wav.shape[-1]))
        return codes[0] if wav.ndim == 1 else codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [q, F]`` or ``[B, q, F]`` int -> ``wav [T']`` or ``[B, T']`` float at 24 kHz."""
        self.check_codes(codes)
        wav = self._decode(codes.reshape(-1, *codes.shape[-2:]).long())
        return wav[0] if codes.ndim == 2 else wav

    def check_codes(self, codes: torch.Tensor, max_levels: int | None = None) -> None:
        """Raise unless ``codes`` is ``[q, F]`` or ``[B, q, F]`` of ints in ``[0, codebook_size)`` with
        ``q == n_codebooks`` (or ``1 <= q <= max_levels`` when given)."""
        if codes.ndim not in (2, 3) or codes.shape[-1] == 0:
            raise ValueError(f"codes must be [q, F] or [B, q, F] with F > 0, got shape {tuple(codes.shape)}")
        if codes.dtype.is_floating_point or codes.dtype.is_complex:
            raise TypeError(f"codes must be integer, got dtype {codes.dtype}")
        levels = codes.shape[-2]
        allowed = range(1, max_levels + 1) if max_levels is not None else range(self.n_codebooks, self.n_codebooks + 1)
        if levels not in allowed:
            raise ValueError(
                f"codes have {levels} levels (shape {tuple(codes.shape)}), expected one of {list(allowed)}"
            )
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.codebook_size:
            raise ValueError(f"codes span [{low}, {high}], outside [0, {self.codebook_size})")
