"""Mel-cepstral distortion after dynamic time warping (MCD-DTW), in dB.

Mel cepstrum of a waveform at 24 kHz: torchaudio's magnitude mel spectrogram (25 ms Hann window, 5 ms hop,
1024-point FFT, zero-padded centred frames, ``N_MELS`` = 80 bands over 0-8 kHz, so that references recorded at
16 kHz or more compare alike), its natural log ``L_m`` (floored at 1e-5), and the cosine transform that gives the
cepstral coefficients of that log spectrum over the ``M`` bands:

    L_m = c_0 + 2 Σ_{d>=1} c_d cos(π d (m + 1/2) / M)   <=>   c_d = (1 / M) Σ_m L_m cos(π d (m + 1/2) / M)

The cepstral order is ``ORDER`` = 24: c_1 .. c_24 are kept. c_0, the frame's mean log level, is excluded, so that
a difference of loudness alone costs nothing.

The distortion of two frames, and of two utterances (their frames paired along the DTW path of least summed frame
distortion, ``dtw.dtw_path``, and averaged over the path's pairs):

    MCD = (10 / ln 10) · sqrt(2 Σ_{d=1}^{24} (c_d - c'_d)^2)   dB

Silence in either clip is kept: leading and trailing pauses are compared too.
"""

import math
from functools import cache

import torch
import torchaudio

from .dtw import dtw_path

SAMPLE_RATE = 24000
ORDER = 24
N_MELS = 80
LOG_FLOOR = 1e-5
MCD_SCALE = 10 / math.log(10) * math.sqrt(2)


@cache
def _mel_spectrogram() -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE,
        n_fft=1024,
        win_length=SAMPLE_RATE // 40,
        hop_length=SAMPLE_RATE // 200,
        f_max=8000.0,
        n_mels=N_MELS,
        power=1.0,
        pad_mode="constant",
    )


def cepstrum(log_mel: torch.Tensor, order: int = ORDER) -> torch.Tensor:
    """``log_mel [F, M]`` (natural log of magnitudes) -> ``c [F, order]``: c_1 .. c_order of each frame."""
    if order >= log_mel.shape[-1]:
        raise ValueError(f"order must be below the {log_mel.shape[-1]} mel bands, got {order}")
    basis = torchaudio.functional.create_dct(order + 1, log_mel.shape[-1], norm=None)  # 2 cos(π d (m + 1/2) / M)
    return (log_mel @ basis.to(log_mel))[..., 1:] / (2 * log_mel.shape[-1])


def mel_cepstrum(wav: torch.Tensor, order: int = ORDER) -> torch.Tensor:
    """``wav [T]`` float at 24 kHz (``T >= 1``) -> mel cepstra ``[F, order]``, ``F = T // 120 + 1`` frames of 5 ms."""
    if wav.ndim != 1 or len(wav) == 0:
        raise ValueError(f"wav must be [T] with T >= 1, got shape {tuple(wav.shape)}")
    log_mel = _mel_spectrogram()(wav.float().cpu()).clamp_min(LOG_FLOOR).log()
    return cepstrum(log_mel.T, order)


def mcd_dtw(reference: torch.Tensor, synthesis: torch.Tensor, order: int = ORDER) -> float:
    """MCD-DTW in dB between ``reference [T]`` and ``synthesis [T']``, both float at 24 kHz."""
    ref, syn = mel_cepstrum(reference, order).double(), mel_cepstrum(synthesis, order).double()
    distance = torch.cdist(ref, syn)
    rows, cols = dtw_path(distance)
    return MCD_SCALE * distance[rows, cols].mean().item()
