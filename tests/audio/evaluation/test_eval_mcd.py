"""MCD-DTW: the cepstral scale, zero for the same clip or a louder copy, small for a delayed copy, larger for
another sentence."""

import math

import pytest
import torch
from lrnn.audio.evaluation.mcd import MCD_SCALE, cepstrum, mcd_dtw, mel_cepstrum
from lrnn.audio.wav import read_wav


@pytest.fixture(scope="module")
def two_clips(ljspeech) -> tuple[torch.Tensor, torch.Tensor]:
    """Two short LJSpeech sentences (1.4 s and 1.9 s) at 24 kHz."""
    return tuple(read_wav(ljspeech / "wavs" / f"{clip_id}.wav") for clip_id in ("LJ001-0002", "LJ001-0007"))


def test_cepstrum_recovers_the_coefficients_of_a_log_spectrum():
    """L_m = c_0 + 2 sum_d c_d cos(pi d (m + 1/2) / M) over M = 80 bands gives back c_1 .. c_24."""
    coefficients = torch.randn(3, 25, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = torch.arange(80, dtype=torch.float64)
    d = torch.arange(1, 25, dtype=torch.float64)[:, None]
    log_mel = coefficients[:, :1] + 2 * coefficients[:, 1:] @ torch.cos(math.pi * d * (m + 0.5) / 80)
    torch.testing.assert_close(cepstrum(log_mel), coefficients[:, 1:], atol=1e-5, rtol=0)  # a float32 basis


def test_frames_are_5_ms_and_the_order_excludes_c0(two_clips):
    wav = two_clips[0]
    assert mel_cepstrum(wav).shape == (len(wav) // 120 + 1, 24)
    assert mel_cepstrum(wav, order=12).shape[1] == 12
    assert mel_cepstrum(wav[:1]).shape == (1, 24)


def test_the_same_clip_or_a_louder_copy_scores_zero(two_clips):
    wav = two_clips[0]
    assert mcd_dtw(wav, wav) == pytest.approx(0.0, abs=1e-6)
    assert mcd_dtw(wav, 0.25 * wav) < 0.01  # a gain only moves c_0


def test_dtw_absorbs_a_delay_that_a_frame_by_frame_distance_does_not(two_clips):
    wav, other = two_clips
    delayed = torch.cat([torch.zeros(2400), wav])  # 100 ms of leading silence
    aligned = mcd_dtw(wav, delayed)
    frames = len(wav) // 120 + 1
    unaligned = MCD_SCALE * (mel_cepstrum(wav) - mel_cepstrum(delayed)[:frames]).norm(dim=1).mean().item()
    assert aligned < 0.2 * unaligned
    assert aligned < 0.3 * mcd_dtw(wav, other)


def test_an_empty_clip_is_refused():
    with pytest.raises(ValueError, match=r"T >= 1, got shape \(0,\)"):
        mel_cepstrum(torch.zeros(0))
