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
