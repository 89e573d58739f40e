import pytest
import torch
from lrnn.audio.wav import read_wav, trim_trailing_silence, write_wav


def test_write_then_read_resamples_to_the_asked_rate(tmp_path):
    tone = 0.5 * torch.sin(2 * torch.pi * 440 * torch.arange(22050) / 22050)
    write_wav(tmp_path / "tone.wav", tone, sample_rate=22050)
    same = read_wav(tmp_path / "tone.wav", sample_rate=22050)
    assert torch.allclose(same, tone, atol=1 / 2**15)
    resampled = read_wav(tmp_path / "tone.wav", sample_rate=24000)
    assert resampled.shape == (24000,) and resampled.dtype == torch.float32
    assert abs(float(resampled.pow(2).mean()) - float(tone.pow(2).mean())) < 1e-3


def test_trim_trailing_silence_keeps_a_short_tail():
    rate = 1000
    tone = 0.5 * torch.sin(2 * torch.pi * 50 * torch.arange(300) / rate)
    wav = torch.cat([tone, 1e-4 * torch.randn(400)])
    trimmed = trim_trailing_silence(wav, rate, keep_seconds=0.02)
    last_loud = int((tone.abs() >= 0.005).nonzero()[-1])
    assert len(trimmed) == last_loud + 1 + 20
    assert torch.equal(trimmed, wav[: len(trimmed)])
    silent = torch.zeros(50)
    assert torch.equal(trim_trailing_silence(silent, rate), silent)
    with pytest.raises(ValueError, match=r"\[T\]"):
        trim_trailing_silence(torch.zeros(2, 5), rate)
