"""The default codec, with no downloaded weights: log-mel frames quantised by residual k-means.

Encoding: the waveform ``[T]`` is right-padded with zeros to ``F * 320`` samples, ``F = ceil(T / 320)``;
its magnitude mel spectrogram (centred STFT, ``n_fft`` 1280, hop 320, Hann window, ``n_mels`` bands up to
``f_max``) keeps the first ``F`` frames, and ``log_mel = ln(max(mel, 1e-5))`` (nepers). Level 1 picks the
nearest of ``codebook_size`` centroids to each frame, level ``l`` the nearest to what levels ``1..l-1`` left.

Decoding sums the chosen centroids, takes ``exp``, maps mel to a linear-frequency magnitude spectrogram with
torchaudio's ``InverseMelScale`` (least squares, clamped at 0) and recovers a phase with torchaudio's
Griffin-Lim (momentum 0.99):
``codes [q, F]`` -> ``wav [F * 320]``, so ``encode(decode(codes))`` has ``F`` frames again.

The codebooks are fitted by ``fit`` on training audio (k-means++ and Lloyd, one level after another) and are
saved with the mel settings to a safetensors file.
"""

import json
import math
from pathlib import Path

import torch
import torchaudio
from safetensors import safe_open
from safetensors.torch import save_file

from .base import AudioCodec
from .kmeans import fit_kmeans, nearest_centroid

LOG_FLOOR = 1e-5


class MelKMeansCodec(AudioCodec):
    """Residual k-means over log-mel frames, decoded by inverse mel scale + Griffin-Lim.

    Args:
        n_codebooks: residual levels ``q`` (1 to 4).
        codebook_size: centroids per level ``K``.
        n_mels: mel bands.
        n_fft: STFT size in samples (window length too).
        f_max: top of the mel filterbank in Hz.
        griffin_lim_iters: Griffin-Lim iterations when decoding (phase starts at zero, so decoding is deterministic).
    """

    def __init__(
        self,
        n_codebooks: int = 1,
        codebook_size: int = 1024,
        n_mels: int = 80,
        n_fft: int = 1280,
        f_max: float = 12000.0,
        griffin_lim_iters: int = 32,
    ):
        super().__init__()
        if not 1 <= n_codebooks <= 4:
            raise ValueError(f"n_codebooks must be 1 to 4, got {n_codebooks}")
        self.config = dict(
            n_codebooks=n_codebooks,
            codebook_size=codebook_size,
            n_mels=n_mels,
            n_fft=n_fft,
            f_max=f_max,
            griffin_lim_iters=griffin_lim_iters,
        )
        self.mel_spectrogram = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=n_fft,
            hop_length=self.hop_length,
            f_max=f_max,
            n_mels=n_mels,
            power=1.0,
        )
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=n_fft // 2 + 1, n_mels=n_mels, sample_rate=self.sample_rate, f_max=f_max
        )
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("codebooks", None)

    @property
    def n_codebooks(self) -> int:
        return self.config["n_codebooks"]

    @property
    def codebook_size(self) -> int:
        return self.config["codebook_size"]

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [B, T]`` float at 24 kHz -> ``log_mel [B, n_mels, ceil(T / 320)]`` in nepers."""
        frames = math.ceil(wav.shape[-1] / self.hop_length)
        padded = torch.nn.functional.pad(wav.float(), (0, frames * self.hop_length - wav.shape[-1]))
        return self.mel_spectrogram(padded)[..., :frames].clamp_min(LOG_FLOOR).log()

    @torch.no_grad()
    def fit(self, wavs: list[torch.Tensor], n_iters: int = 20, seed: int = 0) -> "MelKMeansCodec":
        """Fit the codebooks on the log-mel frames of ``wavs`` (each ``[T]`` float at 24 kHz); level ``l`` is
        seeded with ``seed + l``. Needs at least ``codebook_size`` frames in all."""
        frames = torch.cat([self.log_mel(wav.reshape(1, -1))[0].T for wav in wavs])
        if frames.shape[0] < self.codebook_size:
            raise ValueError(f"{frames.shape[0]} frames cannot fit {self.codebook_size} centroids; give more audio")
        residual = frames
        codebooks = []
        for level in range(self.n_codebooks):
            centroids = fit_kmeans(residual, self.codebook_size, n_iters=n_iters, seed=seed + level)
            residual = residual - centroids[nearest_centroid(residual, centroids)]
            codebooks.append(centroids)
        self.codebooks = torch.stack(codebooks).to(frames.device)
        return self

    def _fitted_codebooks(self) -> torch.Tensor:
        if self.codebooks is None:
            raise RuntimeError("MelKMeansCodec has no codebooks: call fit(wavs) or MelKMeansCodec.load(path) first")
        return self.codebooks

    def _encode(self, wav: torch.Tensor) -> torch.Tensor:
        codebooks = self._fitted_codebooks()
        log_mel = self.log_mel(wav)
        batch, n_mels, frames = log_mel.shape
        residual = log_mel.transpose(1, 2).reshape(batch * frames, n_mels)
        codes = []
        for centroids in codebooks:
            level_codes = nearest_centroid(residual, centroids)
            residual = residual - centroids[level_codes]
            codes.append(level_codes.reshape(batch, frames))
        return torch.stack(codes, dim=1)

    def codes_to_log_mel(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, q', F]`` with ``1 <= q' <= n_codebooks`` -> ``log_mel [B, n_mels, F]``: the sum of the
        chosen centroids of the first ``q'`` levels (fewer levels, coarser frames)."""
        self.check_codes(codes, max_levels=self.n_codebooks)
        codebooks = self._fitted_codebooks()
        frames = sum(codebooks[level][codes[:, level]] for level in range(codes.shape[1]))
        return frames.transpose(1, 2)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        log_mel = self.codes_to_log_mel(codes)
        frames = codes.shape[-1]
        # A centred STFT of F * 320 samples has F + 1 frames: the last one repeats frame F. Griffin-Lim's inverse
        # STFT needs a signal longer than one window, so very short codes are decoded at that length and trimmed.
        decoded_frames = max(frames, -(-self.config["n_fft"] // self.hop_length) + 1)
        log_mel = torch.cat([log_mel, log_mel[..., -1:].expand(-1, -1, decoded_frames - frames + 1)], dim=-1)
        magnitude = self.inverse_mel(log_mel.exp()).clamp_min(0)
        wav = torchaudio.functional.griffinlim(
            magnitude,
            window=self.window,
            n_fft=self.config["n_fft"],
            hop_length=self.hop_length,
            win_length=self.config["n_fft"],
            power=1.0,
            n_iter=self.config["griffin_lim_iters"],
            momentum=0.99,
            length=decoded_frames * self.hop_length,
            rand_init=False,
        )
        return wav[..., : frames * self.hop_length]

    def save(self, path: str | Path) -> None:
        """Write the codebooks ``[q, K, n_mels]`` and the settings to a safetensors file at ``path``."""
        save_file(
            {"codebooks": self._fitted_codebooks().cpu().contiguous()},
            str(path),
            metadata={"config": json.dumps(self.config)},
        )

    @classmethod
    def load(cls, path: str | Path) -> "MelKMeansCodec":
        """A codec with the settings and codebooks saved at ``path`` by ``save``."""
        with safe_open(str(path), framework="pt") as file:
            codec = cls(**json.loads(file.metadata()["config"]))
            codec.codebooks = file.get_tensor("codebooks")
        return codec
