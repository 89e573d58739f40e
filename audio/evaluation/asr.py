"""Speech recognition for the word error rate: PocketSphinx with the US English model inside its wheel.

PocketSphinx 5 (``pip install 'lrnn[audio-eval]'``) bundles an acoustic model, a language model and a
pronunciation dictionary (``pocketsphinx/model/en-us``), so nothing is downloaded. It is a weak recogniser: its
error rates serve to compare systems here, not to compare with papers' Whisper or HuBERT error rates.
"""

import torch
import torchaudio

from .optional import require


class PocketSphinxASR:
    """``transcribe(wav, sample_rate) -> str``: lower-case words separated by spaces ("" when none is heard)."""

    sample_rate = 16000

    def __init__(self) -> None:
        pocketsphinx = require("pocketsphinx", "the word error rate")
        self.decoder = pocketsphinx.Decoder(samprate=self.sample_rate, loglevel="FATAL")

    def transcribe(self, wav: torch.Tensor, sample_rate: int) -> str:
        """``wav [T]`` float in [-1, 1] at ``sample_rate`` Hz -> the recognised words, one utterance."""
        if wav.ndim != 1 or len(wav) == 0:
            raise ValueError(f"wav must be [T] with T >= 1, got shape {tuple(wav.shape)}")
        resampled = torchaudio.functional.resample(wav.float().cpu(), sample_rate, self.sample_rate)
        pcm = (resampled.clamp(-1, 1) * 32767).round().to(torch.int16).numpy().tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return "" if hypothesis is None else hypothesis.hypstr
