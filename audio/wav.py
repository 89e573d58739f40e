"""Reading and writing waveforms with soundfile (torchaudio's load/save need FFmpeg), resampled on read."""

from functools import cache
from pathlib import Path

import soundfile
import torch
import torchaudio


@cache
def _resampler(source_rate: int, target_rate: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(source_rate, target_rate)


def read_wav(path: str | Path, sample_rate: int = 24000) -> torch.Tensor:
    """The audio file at ``path`` as float32 ``[T]`` in [-1, 1] at ``sample_rate`` Hz (channels averaged)."""
    data, source_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    wav = torch.from_numpy(data).mean(dim=1)
    if source_rate != sample_rate:
        wav = _resampler(source_rate, sample_rate)(wav)
    return wav


def write_wav(path: str | Path, wav: torch.Tensor, sample_rate: int = 24000) -> None:
    """Write float ``wav [T]`` (clipped to [-1, 1]) to ``path`` as 16-bit PCM at ``sample_rate`` Hz."""
    if wav.ndim != 1:
        raise ValueError(f"wav must be [T], got shape {tuple(wav.shape)}")
    soundfile.write(str(path), wav.detach().clamp(-1, 1).cpu().numpy(), sample_rate, subtype="PCM_16")


def trim_trailing_silence(
    wav: torch.Tensor, sample_rate: int = 24000, threshold: float = 0.01, keep_seconds: float = 0.05
) -> torch.Tensor:
    """``wav [T]`` without its silent tail: cut ``keep_seconds`` after the last sample whose magnitude reaches
    ``threshold`` times the peak (0.01: -40 dB). An all-silent clip comes back unchanged.

    An audio prompt needs this: training clips end in silence right before EOS, so a model continuing a prompt
    that ends in silence stops at once.
    """
    if wav.ndim != 1:
        raise ValueError(f"wav must be [T], got shape {tuple(wav.shape)}")
    magnitude = wav.abs()
    if wav.numel() == 0 or not bool(magnitude.max() > 0):
        return wav
    last_loud = int((magnitude >= threshold * magnitude.max()).nonzero()[-1])
    return wav[: last_loud + 1 + round(keep_seconds * sample_rate)]
