"""``python -m lrnn.audio.evaluation``: a folder of clips in, ``evaluation.json`` and a table out; bad folders
named."""

import importlib.util
import json

import pytest
import soundfile
import torch
from lrnn.audio.evaluation.__main__ import main
from lrnn.audio.evaluation.evaluate import evaluate
from lrnn.audio.wav import read_wav, write_wav

IDS = ("LJ001-0002", "LJ001-0007")
HAVE_BOTH = all(importlib.util.find_spec(name) for name in ("resemblyzer", "pocketsphinx"))


@pytest.fixture
def generated(ljspeech, tmp_path):
    """Stand-ins for synthesised clips: the two recordings at 24 kHz, the second delayed by 50 ms."""
    folder = tmp_path / "generated"
    folder.mkdir()
    for index, clip_id in enumerate(IDS):
        wav = read_wav(ljspeech / "wavs" / f"{clip_id}.wav")
        write_wav(folder / f"{clip_id}.wav", torch.cat([torch.zeros(1200 * index), wav]))
    return folder


@pytest.mark.skipif(not HAVE_BOTH, reason="needs the audio-eval extra: pip install 'lrnn[audio-eval]'")
def test_every_metric_of_a_folder_lands_in_the_json_and_the_table(ljspeech, generated, tmp_path, capsys):
    out, transcript, references = tmp_path / "report", str(ljspeech / "transcripts_32.psv"), str(ljspeech / "wavs")
    main([str(generated), transcript, "--reference_dir", references, "--output_dir", str(out)])
    result = json.loads((out / "evaluation.json").read_text())
    assert set(result["clips"]) == set(IDS) and result["summary"]["clips"] == 2
    for clip in result["clips"].values():
        assert clip["mcd_db"] < 0.5 and clip["speaker_similarity"] > 0.95
        assert set(clip) == {"mcd_db", "speaker_similarity", "transcript", "wer", "cer"}
    assert 0 <= result["summary"]["wer"] < 1 and result["settings"]["metrics"] == ["mcd", "sim", "wer"]
    table = (out / "evaluation.md").read_text()
    assert "| MCD-DTW (dB, lower is better) |" in table and "| clips | 2 |" in table
    assert table in capsys.readouterr().out


def test_mcd_alone_needs_no_extra_and_writes_next_to_the_clips(ljspeech, generated):
    result = evaluate(str(generated), str(ljspeech / "transcripts_32.psv"), str(ljspeech / "wavs"), metrics=["mcd"])
    assert set(result["summary"]) == {"mcd_db", "clips"}
    assert json.loads((generated / "evaluation.json").read_text()) == result


def test_bad_folders_are_named(ljspeech, generated, tmp_path):
    transcript = str(ljspeech / "transcripts_32.psv")
    with pytest.raises(ValueError, match=r"metrics must be one or more of \('mcd', 'sim', 'wer'\), got \['pesq'\]"):
        evaluate(str(generated), transcript, metrics=["pesq"])
    with pytest.raises(FileNotFoundError, match="no .wav clips in"):
        evaluate(str(tmp_path), transcript, metrics=["wer"])
    with pytest.raises(ValueError, match="give reference_dir, or ask only for wer"):
        evaluate(str(generated), transcript, metrics=["mcd"])
    with pytest.raises(FileNotFoundError, match=r"no reference in .* for LJ001-0002, LJ001-0007"):
        evaluate(str(generated), transcript, str(tmp_path), metrics=["mcd"])
    write_wav(generated / "extra.wav", torch.zeros(100))
    with pytest.raises(ValueError, match=r"clips without a line in .*: extra; add their texts"):
        evaluate(str(generated), transcript, metrics=["wer"])


def test_an_empty_generated_clip_is_named(ljspeech, generated):
    soundfile.write(generated / f"{IDS[0]}.wav", torch.zeros(0).numpy(), 24000)
    with pytest.raises(ValueError, match=f"{IDS[0]}.wav' holds no samples"):
        evaluate(str(generated), str(ljspeech / "transcripts_32.psv"), str(ljspeech / "wavs"), metrics=["mcd"])


@pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None, reason="needs resemblyzer (audio-eval extra)")
def test_a_silent_generated_clip_stops_speaker_similarity_with_its_name(ljspeech, generated):
    write_wav(generated / f"{IDS[1]}.wav", torch.zeros(24000))
    with pytest.raises(ValueError, match=f"clip '{IDS[1]}': no voiced audio.*drop sim from metrics"):
        evaluate(str(generated), str(ljspeech / "transcripts_32.psv"), str(ljspeech / "wavs"), metrics=["sim"])
