"""Shared fixtures of the audio tests: the 32 LJSpeech clips of ../shared/data, one torch thread."""

from pathlib import Path

import pytest
from lrnn.audio.data import read_transcript
from lrnn.audio.wav import read_wav

LJSPEECH = Path("../shared/data/speech/ljspeech")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test module here runs on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def ljspeech() -> Path:
    """The folder of the shared LJSpeech clips (``wavs/``, ``transcripts_32.psv``)."""
    if not (LJSPEECH / "transcripts_32.psv").is_file():
        pytest.skip(f"the shared LJSpeech clips are absent ({LJSPEECH} from the repository root)")
    return LJSPEECH


@pytest.fixture(scope="session")
def training_wavs(ljspeech) -> list:
    """Six clips (about 40 s) at 24 kHz, each float32 [T]."""
    ids = list(read_transcript(ljspeech / "transcripts_32.psv"))[:6]
    return [read_wav(ljspeech / "wavs" / f"{clip_id}.wav") for clip_id in ids]
