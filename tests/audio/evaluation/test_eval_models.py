"""The two packaged models, for real when installed (``audio-eval`` extra), and the error that names the extra
when they are not."""

import importlib.util
import sys

import pytest
import torch
from lrnn.audio.evaluation.asr import PocketSphinxASR
from lrnn.audio.evaluation.speaker import SpeakerEncoder, speaker_similarity
from lrnn.audio.tone_corpus import tone_clip
from lrnn.audio.wav import read_wav

needs_resemblyzer = pytest.mark.skipif(
    importlib.util.find_spec("resemblyzer") is None, reason="resemblyzer is absent: pip install 'lrnn[audio-eval]'"
)
needs_pocketsphinx = pytest.mark.skipif(
    importlib.util.find_spec("pocketsphinx") is None, reason="pocketsphinx is absent: pip install 'lrnn[audio-eval]'"
)


@pytest.mark.parametrize(("module", "build"), [("resemblyzer", SpeakerEncoder), ("pocketsphinx", PocketSphinxASR)])
def test_a_missing_package_names_the_extra(module, build, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # what an absent package gives
    with pytest.raises(ImportError, match=rf"needs the '{module}' package.*pip install 'lrnn\[audio-eval\]'"):
        build()


@needs_pocketsphinx
def test_pocketsphinx_hears_a_real_sentence(ljspeech):
    """LJ001-0002 says "in being comparatively modern."; at 22.05 kHz, resampled to 16 kHz inside."""
    wav = read_wav(ljspeech / "wavs" / "LJ001-0002.wav", 22050)
    assert "being comparatively" in PocketSphinxASR().transcribe(wav, 22050)


@needs_resemblyzer
def test_resemblyzer_scores_the_same_speaker_above_a_changed_voice(ljspeech):
    encoder = SpeakerEncoder()
    clips = [read_wav(ljspeech / "wavs" / f"{clip_id}.wav", 16000) for clip_id in ("LJ001-0002", "LJ001-0004")]
    first, second = (encoder.embed(wav, 16000) for wav in clips)
    lowered = encoder.embed(clips[1], 12000)  # played at 12 kHz: a quarter slower and lower
    assert first.shape == (256,) and torch.linalg.norm(first).item() == pytest.approx(1.0, abs=1e-5)
    same = speaker_similarity(first, second)
    assert same > 0.7 and same > speaker_similarity(first, lowered) + 0.1
    assert same > speaker_similarity(first, encoder.embed(tone_clip("not a voice at all"), 24000)) + 0.1


@needs_resemblyzer
def test_a_silent_clip_has_no_speaker():
    with pytest.raises(ValueError, match="no voiced audio"):
        SpeakerEncoder().embed(torch.zeros(16000), 16000)
