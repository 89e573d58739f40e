"""Speech data: a folder of wav clips with an LJSpeech-style transcript, as (text tokens, codec codes) pairs.

The transcript has one clip a line, ``id|text`` (LJSpeech's ``id|text|normalised text`` also works: the last
field is used); the clip is ``wav_dir/<id>.wav``. ``prepare_data`` reads every clip with soundfile, resamples it
to 24 kHz, encodes it once with the saved ``MelKMeansCodec`` at ``codec_path`` and caches the codes in a
safetensors file at ``codes_cache_path``; the cache is rebuilt when the codec file changes (SHA-256) or a clip
is missing from it.

A batch (``collate_speech``) holds, padded with ``PAD``:
    ``ids``            list of B clip ids
    ``text_tokens``    int64 [B, L]     BOS, UTF-8 bytes (+3) of the text or of its phonemes, EOS
    ``text_lengths``   int64 [B]
    ``audio_tokens``   int64 [B, S, q]  Lina-Speech's delay layout (``lina_delay``), time on dim 1
    ``audio_lengths``  int64 [B]        S_b = F_b + q + 1 for a clip of F_b frames
"""

import hashlib
from functools import cached_property
from pathlib import Path

import lightning as L
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

from .codec.mel_kmeans import MelKMeansCodec
from .delay import lina_delay
from .special_tokens import PAD
from .text import text_tokens
from .tone_corpus import write_tone_corpus
from .wav import read_wav


def read_transcript(path: str | Path) -> dict[str, str]:
    """``{id: text}`` from an ``id|text`` (or ``id|text|normalised``) file; the last field is the text."""
    transcript = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2:
            raise ValueError(f"{path}:{number}: expected 'id|text', got {line!r}")
        transcript[fields[0]] = fields[-1]
    return transcript


def collate_speech(items: list[dict]) -> dict:
    """Pad a list of ``{"id", "text_tokens" [L], "codes" [q, F]}`` into the batch described in the module."""
    texts = [item["text_tokens"] for item in items]
    audio = [lina_delay(item["codes"]).T for item in items]
    return {
        "ids": [item["id"] for item in items],
        "text_tokens": pad_sequence(texts, batch_first=True, padding_value=PAD),
        "text_lengths": torch.tensor([len(text) for text in texts]),
        "audio_tokens": pad_sequence(audio, batch_first=True, padding_value=PAD),
        "audio_lengths": torch.tensor([len(tokens) for tokens in audio]),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SpeechDataModule(L.LightningDataModule):
    """(text, codes) pairs of a wav folder and its transcript, split into train/val by ``seed``.

    Args:
        wav_dir: folder of ``<id>.wav`` clips (any sample rate, mono or not).
        transcript_path: ``id|text`` file.
        codec_path: a fitted ``MelKMeansCodec`` saved with ``save``; when the file does not exist and
            ``codec_settings`` are given, ``prepare_data`` fits one with those settings (``MelKMeansCodec``'s
            arguments) on every clip of the transcript and saves it there.
        codes_cache_path: safetensors file for the codes (written by ``prepare_data``).
        batch_size: clips per batch.
        val_fraction: share of clips held out for validation (at least one when > 0).
        seed: seeds the split and the training shuffle.
        use_phonemes: tokenise espeak-ng's IPA phonemes instead of the text (needs ``espeak-ng``).
        num_workers: DataLoader workers.
        codec_settings: see ``codec_path``.
        tone_corpus_clips: when > 0 and ``transcript_path`` does not exist, ``prepare_data`` first writes that
            many generated clips there and into ``wav_dir`` (``tone_corpus``: letters as tones; for runs that
            must need no recordings, such as the demo).

    The test split is the validation split.
    """

    def __init__(
        self,
        wav_dir: str,
        transcript_path: str,
        codec_path: str,
        codes_cache_path: str,
        batch_size: int = 16,
        val_fraction: float = 0.05,
        seed: int = 0,
        use_phonemes: bool = False,
        num_workers: int = 0,
        codec_settings: dict | None = None,
        tone_corpus_clips: int = 0,
    ):
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.wav_dir, self.transcript_path = Path(wav_dir), Path(transcript_path)
        self.codec_path = Path(codec_path)
        self.codes_cache_path = Path(codes_cache_path)

    @cached_property
    def transcript(self) -> dict[str, str]:
        return read_transcript(self.transcript_path)

    def _wav(self, clip_id: str, sample_rate: int) -> torch.Tensor:
        wav_path = self.wav_dir / f"{clip_id}.wav"
        if not wav_path.is_file():
            raise FileNotFoundError(f"clip {clip_id!r} of the transcript has no audio at {str(wav_path)!r}")
        return read_wav(wav_path, sample_rate)

    def _fit_codec(self) -> None:
        if self.hparams.codec_settings is None:
            raise FileNotFoundError(
                f"no codec at {str(self.codec_path)!r}: fit and save a MelKMeansCodec there, or give codec_settings"
            )
        codec = MelKMeansCodec(**self.hparams.codec_settings)
        codec.fit([self._wav(clip_id, codec.sample_rate) for clip_id in self.transcript], seed=self.hparams.seed)
        self.codec_path.parent.mkdir(parents=True, exist_ok=True)
        codec.save(self.codec_path)

    def _cache_is_current(self, codec_hash: str) -> bool:
        if not self.codes_cache_path.is_file():
            return False
        with safe_open(str(self.codes_cache_path), framework="pt") as cache:
            return (cache.metadata() or {}).get("codec_sha256") == codec_hash and set(self.transcript) <= set(
                cache.keys()
            )

    def prepare_data(self) -> None:
        """Write the tone corpus and fit the codec if asked and missing, then encode every clip of the transcript
        into the codes cache, unless it is current."""
        if self.hparams.tone_corpus_clips > 0 and not self.transcript_path.is_file():
            write_tone_corpus(self.wav_dir, self.transcript_path, self.hparams.tone_corpus_clips, self.hparams.seed)
        if not self.codec_path.is_file():
            self._fit_codec()
        codec_hash = _sha256(self.codec_path)
        if self._cache_is_current(codec_hash):
            return
        codec = MelKMeansCodec.load(self.codec_path)
        codes = {}
        for clip_id in self.transcript:
            codes[clip_id] = codec.encode(self._wav(clip_id, codec.sample_rate)).contiguous()
        self.codes_cache_path.parent.mkdir(parents=True, exist_ok=True)
        save_file(codes, str(self.codes_cache_path), metadata={"codec_sha256": codec_hash})

    def setup(self, stage: str | None = None) -> None:
        """Load the cached codes, tokenise the texts and split the clips."""
        with safe_open(str(self.codes_cache_path), framework="pt") as cache:
            items = [
                {
                    "id": clip_id,
                    "text_tokens": text_tokens(text, use_phonemes=self.hparams.use_phonemes),
                    "codes": cache.get_tensor(clip_id),
                }
                for clip_id, text in self.transcript.items()
            ]
        order = torch.randperm(len(items), generator=torch.Generator().manual_seed(self.hparams.seed)).tolist()
        n_val = max(1, round(self.hparams.val_fraction * len(items))) if self.hparams.val_fraction > 0 else 0
        if n_val >= len(items):
            raise ValueError(
                f"{len(items)} clips leave none for training with val_fraction={self.hparams.val_fraction}"
            )
        self.val_items = [items[index] for index in order[:n_val]]
        self.train_items = [items[index] for index in order[n_val:]]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_items,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.hparams.seed),
            collate_fn=collate_speech,
            num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_items,
            batch_size=self.hparams.batch_size,
            collate_fn=collate_speech,
            num_workers=self.hparams.num_workers,
        )

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
