"""A multi-speaker speech corpus synthesised offline by the ``espeak-ng`` binary, for voice-cloning experiments.

Each speaker is an English espeak-ng voice variant (``en+m1`` .. ``en+m7``, ``en+f1`` .. ``en+f4``) at its own rate
(words per minute) and pitch (0-99, espeak-ng's 50 is the default), so that the voices differ in timbre, tempo and
register. Every speaker reads the same sentences (the built-in ``SENTENCES``, written for this project and placed in
the public domain, or the texts of an ``id|text`` file such as LJSpeech's), and the corpus is laid out as::

    <out_dir>/<speaker>/<speaker>_<index:04d>.wav   16-bit mono at 24 kHz (espeak-ng's 22.05 kHz, resampled)
    <out_dir>/<speaker>.psv                         that speaker's transcript: <speaker>_<index:04d>|text
    <out_dir>/train.psv                             every speaker not held out: <speaker>/<speaker>_<index:04d>|text

so ``SpeechDataModule(wav_dir=<out_dir>/<speaker>, transcript_path=<out_dir>/<speaker>.psv)`` reads one speaker and
``SpeechDataModule(wav_dir=<out_dir>, transcript_path=<out_dir>/train.psv)`` the training speakers together.
A clip that exists is not synthesised again, and a clip is written under a temporary name and then renamed, so an
interrupted run loses nothing and leaves no half-written clip; the transcripts are written last.

    python -m lrnn.audio.espeak_corpus runs/audio/espeak_corpus --held_out m7 f4
    python -m lrnn.audio.espeak_corpus OUT --speakers m1 f1 --sentences 10 \
        --transcript ../shared/data/speech/ljspeech/transcripts_32.psv
"""

import argparse
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from rich.progress import track

from .data import read_transcript
from .wav import read_wav, write_wav

SAMPLE_RATE = 24000


class Speaker(NamedTuple):
    """An espeak-ng voice (``-v``) read at ``rate`` words per minute (``-s``) and ``pitch`` 0-99 (``-p``)."""

    voice: str
    rate: int
    pitch: int


SPEAKERS = {
    "m1": Speaker("en+m1", 150, 40),
    "m2": Speaker("en+m2", 170, 50),
    "m3": Speaker("en+m3", 140, 30),
    "m4": Speaker("en+m4", 180, 45),
    "m5": Speaker("en+m5", 155, 25),
    "m6": Speaker("en+m6", 165, 60),
    "m7": Speaker("en+m7", 145, 35),
    "f1": Speaker("en+f1", 160, 55),
    "f2": Speaker("en+f2", 150, 70),
    "f3": Speaker("en+f3", 175, 60),
    "f4": Speaker("en+f4", 140, 75),
}

SENTENCES = (
    "The old lighthouse keeper climbed the stairs before the storm arrived.",
    "A quiet river runs past the mill at the edge of the village.",
    "Please bring the blue umbrella when you come over tomorrow.",
    "Seven hungry ducks waited patiently beside the frozen pond.",
    "The library closes early on the first Friday of every month.",
    "She painted the garden fence a bright shade of yellow.",
    "Our train was delayed because of snow on the northern line.",
    "He measured the flour carefully and poured it into the bowl.",
    "The mountain path was steep, narrow and covered in loose stones.",
    "Children laughed as the kite rose high above the beach.",
    "The committee will announce its decision next Wednesday afternoon.",
    "A gentle wind carried the smell of bread from the bakery.",
    "Thick fog rolled in from the harbour just after midnight.",
    "The scientist recorded every measurement in a small grey notebook.",
    "Fresh strawberries are sold at the market every summer morning.",
    "They walked along the canal until the lamps were lit.",
    "The clock in the hall struck nine as the guests arrived.",
    "Nobody expected the little orchestra to play so beautifully.",
    "We counted forty swallows resting on the telephone wire.",
    "The baker wakes up at four to light the ovens.",
    "An orange cat slept on the warm roof of the shed.",
    "The captain studied the map and changed the ship's course.",
    "Heavy rain flooded the cellar of the old stone farmhouse.",
    "Her grandmother taught her to knit during the long winter.",
    "The museum displays a collection of ancient silver coins.",
    "A careful driver always checks the mirrors before turning.",
    "The apples in the orchard were ready for picking in October.",
    "Students gathered in the courtyard to hear the announcement.",
    "The journey across the desert took almost three weeks.",
    "He whistled a cheerful tune while repairing the bicycle.",
    "The treasure map was hidden inside a hollow wooden box.",
    "Soft snow covered the rooftops and muffled every sound.",
    "The fisherman mended his nets on the harbour wall.",
    "Bright stars filled the sky above the silent valley.",
    "The teacher asked everyone to write a short poem about autumn.",
    "A small boat drifted slowly toward the rocky island.",
    "The engineer explained how the bridge could carry so much weight.",
    "Warm soup and fresh bread were served to the tired travellers.",
    "The garden gate creaked loudly whenever the wind blew.",
    "Most of the village gathered to watch the evening parade.",
    "The violinist practised the difficult passage again and again.",
    "Golden leaves drifted down onto the path through the park.",
    "The shopkeeper wrapped the parcel in brown paper and string.",
    "A flock of geese flew south over the quiet farmland.",
    "The doctor reminded him to drink plenty of water each day.",
    "Waves crashed against the cliffs below the ruined castle.",
    "The puppy chased its tail until it fell over, dizzy and happy.",
    "They planted a row of young oak trees along the road.",
)


def espeak_binary() -> str:
    """The path of ``espeak-ng``; ``RuntimeError`` with the install command when it is not on the PATH."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError(
            "the espeak corpus needs the espeak-ng binary on the PATH; install it (Debian/Ubuntu: apt-get install -y"
            " espeak-ng)"
        )
    return binary


def synthesise(text: str, speaker: Speaker, path: str | Path, binary: str | None = None) -> None:
    """Speak ``text`` with ``speaker`` and write it to ``path``: 16-bit mono at 24 kHz, written under a temporary
    name in the same folder and then renamed (the file at ``path`` is always whole)."""
    binary = binary or espeak_binary()
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        raw, resampled = Path(folder) / "espeak.wav", Path(folder) / "clip.wav"
        command = [binary, "-v", speaker.voice, "-s", str(speaker.rate), "-p", str(speaker.pitch), "-w", str(raw)]
        result = subprocess.run([*command, "--stdin"], input=text, text=True, capture_output=True)
        if result.returncode != 0 or not raw.is_file():
            raise RuntimeError(f"espeak-ng wrote no audio for {text!r} (exit {result.returncode}): {result.stderr}")
        write_wav(resampled, read_wav(raw, SAMPLE_RATE), SAMPLE_RATE)
        os.replace(resampled, path)


def corpus_sentences(n_sentences: int | None = None, transcript_path: str | Path | None = None) -> list[str]:
    """The first ``n_sentences`` (all when None) of ``SENTENCES``, or of the texts of the ``id|text`` file at
    ``transcript_path`` (its last field)."""
    sentences = list(SENTENCES if transcript_path is None else read_transcript(transcript_path).values())
    source = "the built-in sentences" if transcript_path is None else str(transcript_path)
    if n_sentences is not None and not 1 <= n_sentences <= len(sentences):
        raise ValueError(f"n_sentences must be 1 to {len(sentences)} (the texts of {source}), got {n_sentences}")
    return sentences[:n_sentences]


def write_espeak_corpus(
    out_dir: str | Path,
    speakers: Sequence[str] = tuple(SPEAKERS),
    sentences: Sequence[str] = SENTENCES,
    held_out: Sequence[str] = (),
) -> dict[str, Path]:
    """Synthesise every sentence with every speaker into ``out_dir`` (layout in the module docstring).

    Args:
        out_dir: the corpus folder (created when missing).
        speakers: names of ``SPEAKERS``.
        sentences: the texts every speaker reads (non-empty, one line each, no ``|``).
        held_out: speakers left out of ``train.psv`` (voices for cloning experiments).

    Returns ``{speaker: transcript path}`` of every speaker.
    """
    unknown = [name for name in [*speakers, *held_out] if name not in SPEAKERS]
    if unknown:
        raise ValueError(f"unknown speakers {unknown}: choose from {list(SPEAKERS)}")
    if not speakers or len(set(speakers)) != len(speakers):
        raise ValueError(f"speakers must be one or more distinct names, got {list(speakers)}")
    if not set(held_out) <= set(speakers):
        raise ValueError(f"held_out speakers {list(held_out)} must be among the speakers {list(speakers)}")
    bad = [text for text in sentences if not text.strip() or "|" in text or "\n" in text]
    if not sentences or bad:
        raise ValueError(f"sentences must be one or more non-empty lines without '|', got {bad[:3] or 'none'}")
    binary = espeak_binary()
    out_dir = Path(out_dir)
    ids = [f"{index:04d}" for index in range(len(sentences))]
    jobs = [(name, index) for name in speakers for index in ids]
    for name in speakers:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    texts = dict(zip(ids, sentences, strict=True))
    for name, index in track(jobs, description=f"espeak-ng: {len(speakers)} speakers x {len(sentences)} sentences"):
        path = out_dir / name / f"{name}_{index}.wav"
        if not path.is_file():
            synthesise(texts[index], SPEAKERS[name], path, binary)
    transcripts = {}
    for name in speakers:
        transcripts[name] = out_dir / f"{name}.psv"
        _write_lines(transcripts[name], [f"{name}_{index}|{texts[index]}" for index in ids])
    train = [f"{name}/{name}_{index}|{texts[index]}" for name in speakers if name not in held_out for index in ids]
    if train:
        _write_lines(out_dir / "train.psv", train)
    return transcripts


def _write_lines(path: Path, lines: list[str]) -> None:
    """Write ``lines`` to ``path`` (UTF-8, one a line) through a temporary file and a rename."""
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    """``python -m lrnn.audio.espeak_corpus OUT_DIR [--speakers ...] [--sentences N] [--transcript PSV]
    [--held_out ...]``."""
    parser = argparse.ArgumentParser(prog="python -m lrnn.audio.espeak_corpus", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="corpus folder")
    parser.add_argument("--speakers", nargs="+", default=list(SPEAKERS), choices=list(SPEAKERS), metavar="NAME")
    parser.add_argument("--sentences", type=int, default=None, help="sentences per speaker (default: all)")
    parser.add_argument("--transcript", type=Path, default=None, help="read the sentences from this id|text file")
    parser.add_argument("--held_out", nargs="*", default=[], metavar="NAME", help="speakers left out of train.psv")
    args = parser.parse_args(argv)
    sentences = corpus_sentences(args.sentences, args.transcript)
    transcripts = write_espeak_corpus(args.out_dir, args.speakers, sentences, args.held_out)
    print(f"{len(transcripts)} speakers x {len(sentences)} clips in {args.out_dir}")
    return transcripts


if __name__ == "__main__":
    main()
