import math
import shutil

import pytest
import soundfile
import torch
import torchaudio
from lrnn.audio.codec.mel_kmeans import MelKMeansCodec
from lrnn.audio.data import SpeechDataModule, collate_speech, read_transcript
from lrnn.audio.delay import lina_undelay
from lrnn.audio.special_tokens import BOS, EOS, PAD
from lrnn.audio.text import tokens_to_text
from lrnn.audio.tone_corpus import tone_clip
from lrnn.audio.wav import read_wav


@pytest.fixture(scope="module")
def codec_path(training_wavs, tmp_path_factory):
    path = tmp_path_factory.mktemp("codec") / "codec.safetensors"
    MelKMeansCodec(n_codebooks=1, codebook_size=32).fit(training_wavs[:3], n_iters=5).save(path)
    return path


@pytest.fixture(scope="module")
def cache_path(codec_path, ljspeech):
    """The codes of the 32 clips, encoded once for the module."""
    path = codec_path.parent / "codes.safetensors"
    make_data_module(ljspeech, codec_path, path).prepare_data()
    return path


def make_data_module(ljspeech, codec_path, cache_path, **kwargs):
    return SpeechDataModule(
        wav_dir=str(ljspeech / "wavs"),
        transcript_path=str(ljspeech / "transcripts_32.psv"),
        codec_path=str(codec_path),
        codes_cache_path=str(cache_path),
        **kwargs,
    )


def test_the_32_clips_become_padded_delayed_batches(ljspeech, codec_path, cache_path):
    data = make_data_module(ljspeech, codec_path, cache_path, batch_size=4, val_fraction=0.1)
    data.prepare_data()
    data.setup("fit")
    assert len(data.train_items) == 29 and len(data.val_items) == 3
    assert {item["id"] for item in data.train_items + data.val_items} == set(data.transcript)

    batch = next(iter(data.train_dataloader()))
    assert batch["text_tokens"].shape == (4, int(batch["text_lengths"].max()))
    assert batch["audio_tokens"].shape == (4, int(batch["audio_lengths"].max()), 1)
    items = {item["id"]: item for item in data.train_items}
    transcript = read_transcript(ljspeech / "transcripts_32.psv")
    for row, clip_id in enumerate(batch["ids"]):
        text_length, audio_length = int(batch["text_lengths"][row]), int(batch["audio_lengths"][row])
        assert tokens_to_text(batch["text_tokens"][row, :text_length]) == transcript[clip_id]
        assert (batch["text_tokens"][row, text_length:] == PAD).all()
        audio = batch["audio_tokens"][row, :audio_length].T
        assert audio[0, 0] == BOS and audio[0, -1] == EOS
        assert torch.equal(lina_undelay(audio), items[clip_id]["codes"])
        assert (batch["audio_tokens"][row, audio_length:] == PAD).all()


def test_codes_match_the_codec_and_the_cache_is_reused(ljspeech, codec_path, cache_path):
    written = cache_path.stat().st_mtime_ns
    data = make_data_module(ljspeech, codec_path, cache_path)
    data.prepare_data()
    assert cache_path.stat().st_mtime_ns == written

    data.setup("fit")
    item = next(item for item in data.train_items + data.val_items if item["id"] == "LJ001-0002")
    wav = read_wav(ljspeech / "wavs" / "LJ001-0002.wav")
    assert item["codes"].shape == (1, math.ceil(len(wav) / 320))
    assert torch.equal(item["codes"], MelKMeansCodec.load(codec_path).encode(wav))


def test_the_split_depends_on_the_seed_only(ljspeech, codec_path, cache_path):
    splits = []
    for seed in (0, 0, 1):
        data = make_data_module(ljspeech, codec_path, cache_path, seed=seed, val_fraction=0.25)
        data.setup("fit")
        splits.append(sorted(item["id"] for item in data.val_items))
    assert splits[0] == splits[1] and splits[0] != splits[2]
    assert len(splits[0]) == 8


def test_collate_pads_codebooks_of_different_lengths():
    items = [
        {"id": "a", "text_tokens": torch.tensor([BOS, 70, EOS]), "codes": torch.tensor([[1, 2, 3], [4, 5, 6]])},
        {"id": "b", "text_tokens": torch.tensor([BOS, 71, 72, 73, EOS]), "codes": torch.tensor([[7], [8]])},
    ]
    batch = collate_speech(items)
    assert batch["text_tokens"].shape == (2, 5) and batch["text_lengths"].tolist() == [3, 5]
    assert batch["audio_tokens"].shape == (2, 6, 2) and batch["audio_lengths"].tolist() == [6, 4]
    assert batch["audio_tokens"][1, :, 0].tolist() == [BOS, 10, EOS, EOS, PAD, PAD]


def test_missing_clip_is_named(ljspeech, codec_path, tmp_path):
    transcript = tmp_path / "transcript.psv"
    transcript.write_text("LJ001-0001|fine\nnot-a-clip|missing audio\n")
    data = SpeechDataModule(str(ljspeech / "wavs"), str(transcript), str(codec_path), str(tmp_path / "codes"))
    with pytest.raises(FileNotFoundError, match="not-a-clip"):
        data.prepare_data()


def clips_module(tmp_path, codec_path, clips: dict, **kwargs) -> SpeechDataModule:
    """A data module over ``clips`` (``{id: (text, wav [T], sample_rate)}``) written to ``tmp_path``."""
    (tmp_path / "wavs").mkdir(exist_ok=True)
    for clip_id, (_, wav, rate) in clips.items():
        soundfile.write(tmp_path / "wavs" / f"{clip_id}.wav", wav.numpy(), rate, subtype="PCM_16")
    (tmp_path / "transcript.psv").write_text("".join(f"{i}|{text}\n" for i, (text, _, _) in clips.items()))
    return SpeechDataModule(
        str(tmp_path / "wavs"),
        str(tmp_path / "transcript.psv"),
        str(codec_path),
        str(tmp_path / "codes.safetensors"),
        **kwargs,
    )


def test_clips_at_other_rates_and_in_stereo_are_resampled_to_24_khz(codec_path, tmp_path):
    tone = tone_clip("resample me")  # 24 kHz
    stereo_48k = torchaudio.functional.resample(tone, 24000, 48000)[:, None].expand(-1, 2)
    low_rate = torchaudio.functional.resample(tone, 24000, 16000)
    clips = {"k16": ("low rate", low_rate, 16000), "k48": ("stereo", stereo_48k, 48000)}
    data = clips_module(tmp_path, codec_path, clips, val_fraction=0.0)
    data.prepare_data()
    data.setup("fit")
    frames = {item["id"]: item["codes"].shape[1] for item in data.train_items}
    assert frames == {"k16": math.ceil(len(tone) / 320), "k48": math.ceil(len(tone) / 320)}


def test_empty_short_and_silent_clips_are_listed_together(codec_path, tmp_path):
    clips = {
        "fine": ("fine", tone_clip("fine"), 24000),
        "empty": ("empty", torch.zeros(0), 24000),
        "short": ("short", tone_clip("a")[:600], 24000),  # 25 ms, under the codec's 1280-sample window
        "silent": ("silent", torch.zeros(24000), 24000),
    }
    data = clips_module(tmp_path, codec_path, clips)
    with pytest.raises(ValueError, match="3 clips .* cannot be used") as error:
        data.prepare_data()
    message = str(error.value)
    assert "empty (empty)" in message and "short (25.0 ms long, under the 53.3 ms minimum)" in message
    assert "silent (silent: peak -240 dBFS" in message and "Remove their lines" in message
    assert not (tmp_path / "codes.safetensors").exists()


def test_transcript_lines_without_text_or_not_utf8_name_the_line(tmp_path):
    path = tmp_path / "transcript.psv"
    path.write_text("a|fine\nb|  \n")
    with pytest.raises(ValueError, match=r"transcript.psv:2: clip 'b' has no text; write its text or remove"):
        read_transcript(path)
    path.write_bytes(b"a|fine\nb|caf\xe9\n")  # latin-1
    with pytest.raises(ValueError, match=r"transcript.psv:2: not UTF-8 .*save the transcript as UTF-8"):
        read_transcript(path)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng binary")
def test_text_with_no_phonemes_names_the_clip(codec_path, tmp_path):
    data = clips_module(tmp_path, codec_path, {"dots": ("...", tone_clip("dots"), 24000)}, use_phonemes=True)
    data.prepare_data()
    with pytest.raises(ValueError, match=r"clip 'dots' .* its text '...' gives no tokens .*remove the line"):
        data.setup("fit")


def test_a_codec_fitted_with_other_settings_is_refused(ljspeech, codec_path, cache_path):
    data = make_data_module(ljspeech, codec_path, cache_path, codec_settings={"codebook_size": 64, "n_mels": 80})
    with pytest.raises(ValueError, match=r"fitted with codebook_size 32 \(asked 64\): delete the file to refit"):
        data.prepare_data()
    make_data_module(ljspeech, codec_path, cache_path, codec_settings={"codebook_size": 32}).prepare_data()
