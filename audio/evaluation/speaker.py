"""Speaker similarity: the cosine between two clips' speaker embeddings from Resemblyzer's encoder.

Resemblyzer (``pip install 'lrnn[audio-eval]'``) ships the weights of its GE2E speaker encoder inside its wheel, so
nothing is downloaded. A clip is resampled to 16 kHz (torchaudio), loudness-normalised and stripped of long pauses
(Resemblyzer's ``preprocess_wav``, with webrtcvad's voice-activity detection), then embedded
(``embed_utterance``: the unit-norm mean of the d-vectors of 1.6 s windows, ``[256]``). The similarity is a cosine
in [-1, 1]; it is a proxy for the WavLM or ECAPA similarities of papers, not comparable with them.
"""

import torch
import torchaudio

from .optional import require


class SpeakerEncoder:
    """Resemblyzer's ``VoiceEncoder`` on ``device``: ``embed(wav, sample_rate) -> [256]``."""

    sample_rate = 16000

    def __init__(self, device: str = "cpu") -> None:
        resemblyzer = require("resemblyzer", "speaker similarity")
        self.encoder = resemblyzer.VoiceEncoder(device, verbose=False)
        self.preprocess = resemblyzer.preprocess_wav

    def embed(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``wav [T]`` float at ``sample_rate`` Hz -> unit-norm speaker embedding ``[256]`` (float32).

        Raises ``ValueError`` when the clip has no voiced audio (silent, or shorter than a 30 ms VAD window)."""
        if wav.ndim != 1 or len(wav) == 0:
            raise ValueError(f"wav must be [T] with T >= 1, got shape {tuple(wav.shape)}")
        resampled = torchaudio.functional.resample(wav.float().cpu(), sample_rate, self.sample_rate)
        voiced = self.preprocess(resampled.numpy()) if resampled.abs().max() > 0 else resampled.numpy()[:0]
        if len(voiced) == 0:
            raise ValueError("no voiced audio in the clip (silent, or too short for voice-activity detection)")
        return torch.from_numpy(self.encoder.embed_utterance(voiced))


def speaker_similarity(embedding: torch.Tensor, other: torch.Tensor) -> float:
    """Cosine similarity of two speaker embeddings ``[D]``, in [-1, 1]."""
    return torch.nn.functional.cosine_similarity(embedding.double(), other.double(), dim=0).item()
