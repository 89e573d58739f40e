import math

import pytest
import torch
from lrnn.audio.codec.mel_kmeans import MelKMeansCodec
from lrnn.audio.data import SpeechDataModule, collate_speech, read_transcript
from lrnn.audio.delay import lina_undelay
from lrnn.audio.special_tokens import BOS, EOS, PAD
from lrnn.audio.text import tokens_to_text
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
