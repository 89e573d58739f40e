"""``lrnn bench voice_cloning`` end to end on a tiny untrained model on the CPU (the numbers mean nothing: the test
checks the pipeline and what it writes), and its split of the speaker's clips."""

import importlib.util
import json
import shutil

import lightning as L
import pytest
import soundfile
import torch
from lrnn.audio.codec.mel_kmeans import MelKMeansCodec
from lrnn.audio.espeak_corpus import write_espeak_corpus
from lrnn.audio.lit import LinaSpeechModule
from lrnn.audio.voice_tuning import load_voice
from lrnn.audio.wav import read_wav
from lrnn.benchmarks.voice_cloning import CONDITIONS, split_clips

from lrnn.cli import available_benchmarks, main

MISSING = [name for name in ("resemblyzer", "pocketsphinx") if importlib.util.find_spec(name) is None]
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs the espeak-ng binary (apt-get install -y espeak-ng)"
)
needs_eval_models = pytest.mark.skipif(bool(MISSING), reason=f"{MISSING} absent: pip install 'lrnn[audio-eval]'")
SHORT_SENTENCES = ["Good morning to you.", "The sun is warm.", "Open the door.", "Birds sing at dawn."]


@pytest.fixture
def checkpoint(tmp_path):
    """Speaker f4 reading four short sentences (about 1 s each), a 16-code codec fitted on them, and the checkpoint
    of an untrained tiny model."""
    write_espeak_corpus(tmp_path / "corpus", ["f4"], SHORT_SENTENCES)
    codec_path = tmp_path / "codec.safetensors"
    wavs = [read_wav(path) for path in sorted((tmp_path / "corpus" / "f4").glob("*.wav"))]
    MelKMeansCodec(codebook_size=16, n_mels=32).fit(wavs, n_iters=5).save(codec_path)
    torch.manual_seed(0)
    dims = dict(d_model=32, num_layers=1, num_heads=2, text_layers=1, text_heads=2, position_dim=16)
    module = LinaSpeechModule(str(codec_path), codebook_size=16, **dims)
    path = tmp_path / "tiny.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )
    return path


def test_it_is_a_registered_benchmark():
    assert "voice_cloning" in available_benchmarks()


@needs_espeak
@needs_eval_models
def test_end_to_end_on_a_tiny_untrained_model(checkpoint, tmp_path, capsys):
    """Two clips (about 3 s) to tune, two to test, outputs of at most 0.4 s; generated and scored in two stages,
    the second without the checkpoint (as on a machine that only scores)."""
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    tune_seconds = soundfile.info(str(corpus / "f4" / "f4_0000.wav")).duration + 0.01
    speaker = ["--wav-dir", str(corpus / "f4"), "--transcript", str(corpus / "f4.psv"), "--out", str(out)]
    args = [*speaker, "--tune-seconds", str(tune_seconds), "--eval-clips", "2", "--epochs", "2"]
    main(["bench", "voice_cloning", "--checkpoint", str(checkpoint), *args, "--max-seconds", "0.4", "--device", "cpu",
          "--stage", "generate"])  # fmt: skip
    assert (out / "generation.json").is_file() and not (out / "voice_cloning.json").exists()
    main(["bench", "voice_cloning", *speaker, "--stage", "score"])

    report = json.loads((out / "voice_cloning.json").read_text())
    assert report["tune_clips"] == ["f4_0000", "f4_0001"] and report["test_clips"] == ["f4_0002", "f4_0003"]
    assert report["prompt_clip"] == "f4_0000" and report["max_frames"] == 30
    assert 0 < report["prompt_frames"] < (tune_seconds - 0.2) * 75  # espeak's 0.3-0.4 s silent tail is trimmed
    assert len(report["tuning"]["losses"]) == 2 and report["settings"]["rank"] == 1
    assert list(report["conditions"]) == list(CONDITIONS)
    for name, result in report["conditions"].items():
        summary, clips = result["summary"], result["clips"]
        assert set(summary) == {"speaker_similarity", "wer", "cer", "clips", "unscorable"} and summary["clips"] == 2
        assert list(clips) == ["f4_0002", "f4_0003"]
        for clip_id, clip in clips.items():
            assert set(clip) == {"frames", "seconds", "speaker_similarity", "transcript", "wer", "cer"}
            assert (out / name / f"{clip_id}.wav").is_file() == (clip["frames"] >= 4)
            assert clip["seconds"] == (clip["frames"] * 320 / 24000 if clip["frames"] >= 4 else 0.0)
            assert name == "codec" or clip["frames"] <= 30
    assert report["conditions"]["codec"]["summary"]["unscorable"] == 0
    table = (out / "voice_cloning.md").read_text()
    assert set(report["real"]) == {"wer", "cer"}
    assert table.startswith("| condition | speaker similarity | WER |")
    assert all(f"| {name} |" in table for name in [*CONDITIONS, "real"])
    assert table in capsys.readouterr().out
    model = LinaSpeechModule.load_from_checkpoint(checkpoint, weights_only=False).model
    assert len(load_voice(out / "voice.safetensors", model).initial_states()) == 2


def test_scoring_needs_a_generation_first(tmp_path):
    args = ["--wav-dir", str(tmp_path), "--transcript", str(tmp_path / "t.psv"), "--out", str(tmp_path / "out")]
    with pytest.raises(FileNotFoundError, match="run --stage generate"):
        main(["bench", "voice_cloning", *args, "--stage", "score"])
    with pytest.raises(SystemExit):
        main(["bench", "voice_cloning", *args, "--stage", "generate"])


def test_the_split_leaves_clips_to_test():
    clips = [{"wav": torch.zeros(24000 * seconds)} for seconds in (3, 4, 5, 2)]
    tune, test = split_clips(clips, tune_seconds=6, eval_clips=5, sample_rate=24000)
    assert (len(tune), len(test)) == (2, 2)
    assert [len(part) for part in split_clips(clips, 0, 1, 24000)] == [1, 1]
    with pytest.raises(ValueError, match=r"4 clips leave none to test after 4 for tuning \(14.0 s\)"):
        split_clips(clips, tune_seconds=60, eval_clips=5, sample_rate=24000)
