"""The generated tone corpus, and a speech data module that writes it and fits its codec when they are missing."""

import pytest
import torch
from lrnn.audio.data import SpeechDataModule
from lrnn.audio.tone_corpus import LETTER_SECONDS, SAMPLE_RATE, letter_tone, tone_clip, write_tone_corpus
from lrnn.audio.wav import read_wav


def test_each_letter_is_a_tone_at_its_own_pitch():
    steps = round(LETTER_SECONDS * SAMPLE_RATE)
    for letter, frequency in (("a", 200.0), ("e", 400.0), ("i", 800.0)):
        spectrum = torch.fft.rfft(letter_tone(letter), n=SAMPLE_RATE).abs()
        assert spectrum.argmax().item() == pytest.approx(frequency, abs=2)
    assert torch.equal(letter_tone(" "), torch.zeros(steps))
    assert tone_clip("ab c").shape == (4 * steps,)


def test_corpus_files_match_their_transcript(tmp_path):
    write_tone_corpus(tmp_path / "wavs", tmp_path / "t.psv", n_clips=3, seed=1)
    lines = (tmp_path / "t.psv").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        clip_id, text = line.split("|")
        assert text.replace(" ", "").isalpha()
        torch.testing.assert_close(read_wav(tmp_path / "wavs" / f"{clip_id}.wav"), tone_clip(text), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="n_clips"):
        write_tone_corpus(tmp_path / "w", tmp_path / "u.psv", n_clips=0)


def run_paths(folder):
    return {
        "wav_dir": str(folder / "wavs"),
        "transcript_path": str(folder / "transcript.psv"),
        "codec_path": str(folder / "codec.safetensors"),
        "codes_cache_path": str(folder / "codes.safetensors"),
    }


def test_a_missing_codec_needs_its_settings(tmp_path):
    with pytest.raises(FileNotFoundError, match="codec_settings"):
        SpeechDataModule(**run_paths(tmp_path), tone_corpus_clips=4).prepare_data()


def test_data_module_writes_the_corpus_and_fits_its_codec(tmp_path):
    paths = run_paths(tmp_path)
    settings = {"n_codebooks": 1, "codebook_size": 8, "n_mels": 20}
    data = SpeechDataModule(**paths, batch_size=2, val_fraction=0.25, codec_settings=settings, tone_corpus_clips=8)
    data.prepare_data()
    data.setup("fit")
    assert len(data.train_items) == 6 and len(data.val_items) == 2
    batch = next(iter(data.test_dataloader()))
    assert batch["audio_tokens"].shape[0] == 2 and int(batch["audio_tokens"].max()) < 8 + 3
