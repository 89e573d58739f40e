import torch
from lrnn.audio.wav import read_wav, write_wav


def test_write_then_read_resamples_to_the_asked_rate(tmp_path):
    tone = 0.5 * torch.sin(2 * torch.pi * 440 * torch.arange(22050) / 22050)
    write_wav(tmp_path / "tone.wav", tone, sample_rate=22050)
    same = read_wav(tmp_path / "tone.wav", sample_rate=22050)
    assert torch.allclose(same, tone, atol=1 / 2**15)
    resampled = read_wav(tmp_path / "tone.wav", sample_rate=24000)
    assert resampled.shape == (24000,) and resampled.dtype == torch.float32
    assert abs(float(resampled.pow(2).mean()) - float(tone.pow(2).mean())) < 1e-3
