"""The espeak-ng corpus: its layout and transcripts as ``SpeechDataModule`` reads them, speakers that differ, clips
that are not made twice nor left half-written, and clear errors for a missing binary and bad arguments."""

import shutil

import pytest
import soundfile
import torch
from lrnn.audio import espeak_corpus
from lrnn.audio.data import SpeechDataModule, read_transcript
from lrnn.audio.espeak_corpus import SENTENCES, corpus_sentences, main, write_espeak_corpus
from lrnn.audio.wav import read_wav

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs the espeak-ng binary (apt-get install -y espeak-ng)"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Speakers m3 (140 wpm, pitch 30) and m4 (180 wpm, pitch 45) reading two sentences, m4 held out."""
    folder = tmp_path_factory.mktemp("espeak")
    if shutil.which("espeak-ng") is not None:
        write_espeak_corpus(folder, ["m3", "m4"], SENTENCES[:2], held_out=["m4"])
    return folder


@needs_espeak
def test_layout_and_transcripts(corpus):
    assert sorted(path.name for path in corpus.iterdir()) == ["m3", "m3.psv", "m4", "m4.psv", "train.psv"]
    for name in ("m3", "m4"):
        transcript = read_transcript(corpus / f"{name}.psv")
        assert transcript == {f"{name}_0000": SENTENCES[0], f"{name}_0001": SENTENCES[1]}
        assert sorted(path.name for path in (corpus / name).iterdir()) == [f"{name}_0000.wav", f"{name}_0001.wav"]
        for clip_id in transcript:
            info = soundfile.info(str(corpus / name / f"{clip_id}.wav"))
            assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16")
            assert 1.0 < info.duration < 8.0
            assert read_wav(corpus / name / f"{clip_id}.wav").abs().max() > 0.1
    assert read_transcript(corpus / "train.psv") == {"m3/m3_0000": SENTENCES[0], "m3/m3_0001": SENTENCES[1]}


@needs_espeak
def test_speakers_differ(corpus):
    """The same sentence lasts about 180/140 times longer from m3 (140 words a minute) than from m4 (180)."""
    slow, fast = (read_wav(corpus / name / f"{name}_0000.wav") for name in ("m3", "m4"))
    assert 1.15 < len(slow) / len(fast) < 1.5


@needs_espeak
def test_a_speaker_and_the_training_speakers_load_in_the_data_module(corpus, tmp_path):
    codec = {"codebook_size": 8, "n_mels": 16}
    for wav_dir, transcript, ids in [
        (corpus / "m4", corpus / "m4.psv", {"m4_0000", "m4_0001"}),
        (corpus, corpus / "train.psv", {"m3/m3_0000", "m3/m3_0001"}),
    ]:
        data = SpeechDataModule(
            str(wav_dir),
            str(transcript),
            str(tmp_path / f"{transcript.stem}_codec.safetensors"),
            str(tmp_path / f"{transcript.stem}_codes.safetensors"),
            val_fraction=0.0,
            codec_settings=codec,
        )
        data.prepare_data()
        data.setup("fit")
        batch = next(iter(data.train_dataloader()))
        assert set(batch["ids"]) == ids and batch["audio_tokens"].shape[0] == 2


@needs_espeak
def test_existing_clips_are_kept_and_missing_ones_made(corpus, tmp_path, monkeypatch):
    folder = tmp_path / "corpus"
    shutil.copytree(corpus, folder)
    (folder / "m3" / "m3_0001.wav").unlink()
    kept = (folder / "m4" / "m4_0000.wav").stat().st_mtime_ns
    made, synthesise = [], espeak_corpus.synthesise

    def counted(text, *args):
        made.append(text)
        synthesise(text, *args)

    monkeypatch.setattr(espeak_corpus, "synthesise", counted)
    write_espeak_corpus(folder, ["m3", "m4"], SENTENCES[:2], held_out=["m4"])
    assert made == [SENTENCES[1]]
    assert (folder / "m4" / "m4_0000.wav").stat().st_mtime_ns == kept
    assert torch.equal(read_wav(folder / "m3" / "m3_0001.wav"), read_wav(corpus / "m3" / "m3_0001.wav"))


@needs_espeak
def test_an_interrupted_clip_leaves_nothing_behind(tmp_path, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(espeak_corpus, "read_wav", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_espeak_corpus(tmp_path, ["f1"], SENTENCES[:1])
    assert list((tmp_path / "f1").iterdir()) == [] and not (tmp_path / "f1.psv").exists()


@needs_espeak
def test_cli_reads_sentences_from_a_transcript(ljspeech, tmp_path, capsys):
    transcripts = main(
        [str(tmp_path), "--speakers", "f2", "--sentences", "1", "--transcript", str(ljspeech / "transcripts_32.psv")]
    )
    first = next(iter(read_transcript(ljspeech / "transcripts_32.psv").values()))
    assert read_transcript(transcripts["f2"]) == {"f2_0000": first}
    assert (tmp_path / "f2" / "f2_0000.wav").is_file() and "1 speakers x 1 clips" in capsys.readouterr().out


def test_a_missing_espeak_ng_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"espeak-ng binary.*apt-get install -y espeak-ng"):
        write_espeak_corpus(tmp_path, ["m1"], SENTENCES[:1])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"speakers": ["m1", "x9"]}, r"unknown speakers \['x9'\]: choose from \['m1'"),
        ({"speakers": ["m1", "m1"]}, "distinct"),
        ({"speakers": ["m1"], "held_out": ["f1"]}, r"held_out speakers \['f1'\] must be among"),
        ({"sentences": ["one | two"]}, "without '|'"),
        ({"sentences": ["  "]}, "non-empty"),
    ],
)
def test_bad_arguments_are_named(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        write_espeak_corpus(tmp_path, **{"speakers": ["m1"], **kwargs})


def test_sentence_count_is_checked(ljspeech):
    assert corpus_sentences(3) == list(SENTENCES[:3]) and len(corpus_sentences()) == len(SENTENCES)
    assert len(corpus_sentences(transcript_path=ljspeech / "transcripts_32.psv")) == 32
    with pytest.raises(ValueError, match=r"n_sentences must be 1 to 32 \(the texts of .*transcripts_32.psv\), got 33"):
        corpus_sentences(33, ljspeech / "transcripts_32.psv")
