"""A generated "speech" corpus that needs no recordings: each letter of a text is a short tone at its own pitch.

The mapping from text to audio is deterministic and learnable (a letter's pitch, a space's silence), so a
text-to-speech model can be trained and checked end to end on a machine with no data. Not speech: the demo uses
it; real training uses recorded clips (``configs/audio/lina_ljspeech.yaml``).
"""

import math
from pathlib import Path

import torch

from .wav import write_wav

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SAMPLE_RATE = 24000
LETTER_SECONDS = 0.08


def letter_tone(letter: str) -> torch.Tensor:
    """``[LETTER_SECONDS * 24000]`` float32: a Hann-windowed tone whose pitch rises with the letter (a = 200 Hz,
    three semitones a letter), silence for anything else."""
    steps = round(LETTER_SECONDS * SAMPLE_RATE)
    if letter not in LETTERS:
        return torch.zeros(steps)
    frequency = 200.0 * 2 ** (3 * LETTERS.index(letter) / 12)
    t = torch.arange(steps) / SAMPLE_RATE
    return 0.5 * torch.sin(2 * math.pi * frequency * t) * torch.hann_window(steps, periodic=False)


def tone_clip(text: str) -> torch.Tensor:
    """The clip of ``text`` (lower-cased): its letters' tones one after another, ``[len(text) * steps]``."""
    return torch.cat([letter_tone(letter) for letter in text.lower()])


def write_tone_corpus(
    wav_dir: str | Path, transcript_path: str | Path, n_clips: int, seed: int = 0, words: tuple[int, int] = (2, 4)
) -> None:
    """Write ``n_clips`` clips of random words (3-6 letters each, ``words`` words a clip) as ``<wav_dir>/<id>.wav``
    and their ``id|text`` transcript at ``transcript_path``."""
    if n_clips < 1:
        raise ValueError(f"n_clips must be positive, got {n_clips}")
    wav_dir, transcript_path = Path(wav_dir), Path(transcript_path)
    wav_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)

    def word() -> str:
        length = int(torch.randint(3, 7, (1,), generator=gen))
        return "".join(LETTERS[i] for i in torch.randint(0, 26, (length,), generator=gen))

    lines = []
    for index in range(n_clips):
        text = " ".join(word() for _ in range(int(torch.randint(words[0], words[1] + 1, (1,), generator=gen))))
        clip_id = f"tone_{index:04d}"
        write_wav(wav_dir / f"{clip_id}.wav", tone_clip(text), SAMPLE_RATE)
        lines.append(f"{clip_id}|{text}")
    transcript_path.parent.mkdir(parents=True, exist_ok=True)
    transcript_path.write_text("\n".join(lines) + "\n")
