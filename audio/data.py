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

With ``length_bucketing``, batches hold clips of similar ``S_b`` (``bucketing.LengthBucketBatchSampler``): at most
``batch_size`` clips and at most ``max_tokens`` padded audio steps (``B × S``, the size of ``audio_tokens`` over its
codebooks). On several devices, set the trainer's ``use_distributed_sampler: false``: the training batches are then
split by the trainer's rank and world size here (every rank gets as many; none is dropped), and every rank
validates on all the validation clips.

Bad inputs raise a ``ValueError`` that names the clip and the fix: a transcript that is not UTF-8, a line
with no text, a text that tokenises to nothing (e.g. only punctuation, with phonemes), a missing clip, a clip that
is empty, shorter than one analysis window of the codec (``n_fft`` samples at 24 kHz), or silent (peak below
``SILENCE_DBFS``), and a codec file fitted with other settings than ``codec_settings``. Clips at any sample rate
are resampled to the codec's 24 kHz (``read_wav``).
"""

import hashlib
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import lightning as L
import soundfile
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

from .bucketing import LengthBucketBatchSampler
from .codec.mel_kmeans import MelKMeansCodec
from .delay import lina_delay
from .special_tokens import PAD
from .text import text_tokens
from .tone_corpus import write_tone_corpus
from .wav import read_wav

SILENCE_DBFS = -60.0


def read_transcript(path: str | Path) -> dict[str, str]:
    """``{id: text}`` from a UTF-8 ``id|text`` (or ``id|text|normalised``) file; the last field is the text."""
    raw = Path(path).read_bytes()
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 ({error.reason} at byte {error.start}); save the transcript as UTF-8"
        ) from error
    transcript = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2:
            raise ValueError(f"{path}:{number}: expected 'id|text', got {line!r}")
        if not fields[-1].strip():
            raise ValueError(f"{path}:{number}: clip {fields[0]!r} has no text; write its text or remove the line")
        transcript[fields[0]] = fields[-1]
    return transcript


def clip_problem(wav: torch.Tensor, min_samples: int, sample_rate: int) -> str | None:
    """Why ``wav [T]`` (at ``sample_rate`` Hz) cannot train a model: shorter than ``min_samples``, or silent
    (peak amplitude below ``SILENCE_DBFS`` dB full scale); None when it can."""
    if len(wav) < min_samples:
        milliseconds, minimum = 1000 * len(wav) / sample_rate, 1000 * min_samples / sample_rate
        return f"{milliseconds:.1f} ms long, under the {minimum:.1f} ms minimum"
    peak_dbfs = 20 * torch.log10(wav.abs().max().clamp_min(1e-12)).item()
    if peak_dbfs < SILENCE_DBFS:
        return f"silent: peak {peak_dbfs:.0f} dBFS, under {SILENCE_DBFS:.0f} dBFS"
    return None


def audio_steps(item: dict) -> int:
    """Steps ``S = F + q + 1`` of an item's ``codes [q, F]`` in the delay layout (its row of ``audio_tokens``)."""
    q, frames = item["codes"].shape
    return frames + q + 1


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
        batch_size: clips per batch (the most clips per batch with ``length_bucketing``).
        val_fraction: share of clips held out for validation (at least one when > 0).
        seed: seeds the split and the training shuffle.
        use_phonemes: tokenise espeak-ng's IPA phonemes instead of the text (needs ``espeak-ng``).
        num_workers: DataLoader workers.
        codec_settings: see ``codec_path``; when the file exists, its settings must equal these.
        tone_corpus_clips: when > 0 and ``transcript_path`` does not exist, ``prepare_data`` first writes that
            many generated clips there and into ``wav_dir`` (``tone_corpus``: letters as tones; for runs that
            must need no recordings, such as the demo).
        length_bucketing: batch clips of similar length (see the module docstring); otherwise batches of
            ``batch_size`` clips in a random order.
        max_tokens: with ``length_bucketing``, the most padded audio steps ``B × S`` in a batch (None: no budget).

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
        length_bucketing: bool = False,
        max_tokens: int | None = None,
    ):
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if max_tokens is not None and not length_bucketing:
            raise ValueError(f"max_tokens={max_tokens} bounds bucketed batches only: set length_bucketing=True")
        self.save_hyperparameters()
        self.wav_dir, self.transcript_path = Path(wav_dir), Path(transcript_path)
        self.codec_path = Path(codec_path)
        self.codes_cache_path = Path(codes_cache_path)

    @cached_property
    def transcript(self) -> dict[str, str]:
        return read_transcript(self.transcript_path)

    def _wavs(self, codec: MelKMeansCodec) -> Iterator[tuple[str, torch.Tensor]]:
        """``(id, wav [T])`` of every usable clip of the transcript at the codec's rate; after the last one, a
        ``ValueError`` that lists the clips that are empty, too short for the codec or silent, if any."""
        problems = []
        for clip_id in self.transcript:
            wav_path = self.wav_dir / f"{clip_id}.wav"
            if not wav_path.is_file():
                raise FileNotFoundError(f"clip {clip_id!r} of the transcript has no audio at {str(wav_path)!r}")
            if soundfile.info(str(wav_path)).frames == 0:
                problems.append(f"{clip_id} (empty)")
                continue
            wav = read_wav(wav_path, codec.sample_rate)
            problem = clip_problem(wav, codec.config["n_fft"], codec.sample_rate)
            if problem is None:
                yield clip_id, wav
            else:
                problems.append(f"{clip_id} ({problem})")
        if problems:
            listed = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
            raise ValueError(
                f"{len(problems)} clips of {self.transcript_path} cannot be used: {listed}. Remove their lines from"
                " the transcript (or record them again)"
            )

    def _fit_codec(self) -> None:
        if self.hparams.codec_settings is None:
            raise FileNotFoundError(
                f"no codec at {str(self.codec_path)!r}: fit and save a MelKMeansCodec there, or give codec_settings"
            )
        codec = MelKMeansCodec(**self.hparams.codec_settings)
        codec.fit([wav for _, wav in self._wavs(codec)], seed=self.hparams.seed)
        self.codec_path.parent.mkdir(parents=True, exist_ok=True)
        codec.save(self.codec_path)

    def _check_codec_settings(self, codec: MelKMeansCodec) -> None:
        """Raise when ``codec_settings`` are given and the saved codec was fitted with other settings."""
        if self.hparams.codec_settings is None:
            return
        asked = MelKMeansCodec(**self.hparams.codec_settings).config
        differ = {key: (codec.config[key], value) for key, value in asked.items() if codec.config[key] != value}
        if differ:
            listed = ", ".join(f"{key} {saved} (asked {value})" for key, (saved, value) in differ.items())
            raise ValueError(
                f"the codec at {str(self.codec_path)!r} was fitted with {listed}: delete the file to refit it with"
                " codec_settings, or make codec_settings match it"
            )

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
        codec = MelKMeansCodec.load(self.codec_path)
        self._check_codec_settings(codec)
        codec_hash = _sha256(self.codec_path)
        if self._cache_is_current(codec_hash):
            return
        codes = {clip_id: codec.encode(wav).contiguous() for clip_id, wav in self._wavs(codec)}
        self.codes_cache_path.parent.mkdir(parents=True, exist_ok=True)
        save_file(codes, str(self.codes_cache_path), metadata={"codec_sha256": codec_hash})

    def _text_tokens(self, clip_id: str, text: str) -> torch.Tensor:
        try:
            return text_tokens(text, use_phonemes=self.hparams.use_phonemes)
        except ValueError as error:
            raise ValueError(
                f"clip {clip_id!r} of {self.transcript_path}: its text {text!r} gives no tokens ({error}); write"
                " words that can be spoken, or remove the line"
            ) from error

    def setup(self, stage: str | None = None) -> None:
        """Load the cached codes, tokenise the texts and split the clips."""
        with safe_open(str(self.codes_cache_path), framework="pt") as cache:
            items = [
                {"id": clip_id, "text_tokens": self._text_tokens(clip_id, text), "codes": cache.get_tensor(clip_id)}
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

    def _bucketed(self, items: list[dict], shuffle: bool, num_replicas: int = 1, rank: int = 0) -> DataLoader:
        sampler = LengthBucketBatchSampler(
            [audio_steps(item) for item in items],
            max_tokens=self.hparams.max_tokens,
            max_batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            seed=self.hparams.seed,
            num_replicas=num_replicas,
            rank=rank,
        )
        return DataLoader(items, batch_sampler=sampler, collate_fn=collate_speech, num_workers=self.hparams.num_workers)

    def train_dataloader(self) -> DataLoader:
        if self.hparams.length_bucketing:
            trainer = self.trainer
            replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
            return self._bucketed(self.train_items, shuffle=True, num_replicas=replicas, rank=rank)
        return DataLoader(
            self.train_items,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.hparams.seed),
            collate_fn=collate_speech,
            num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        if self.hparams.length_bucketing and self.val_items:
            return self._bucketed(self.val_items, shuffle=False)
        return DataLoader(
            self.val_items,
            batch_size=self.hparams.batch_size,
            collate_fn=collate_speech,
            num_workers=self.hparams.num_workers,
        )

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
