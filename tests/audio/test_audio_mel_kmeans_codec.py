import math

import pytest
import torch
from lrnn.audio.codec.mel_kmeans import MelKMeansCodec
from lrnn.audio.data import read_transcript
from lrnn.audio.wav import read_wav


@pytest.fixture(scope="module")
def fitted_codec(training_wavs) -> MelKMeansCodec:
    """A 4-level, 64-code codec fitted on the six training clips (10 Lloyd iterations)."""
    return MelKMeansCodec(n_codebooks=4, codebook_size=64).fit(training_wavs, n_iters=10)


def mean_abs_log_mel_error(codec, a, b):
    return float((codec.log_mel(a.reshape(1, -1)) - codec.log_mel(b.reshape(1, -1))).abs().mean())


@pytest.mark.parametrize("length", [320 * 50, 320 * 50 + 1, 7777])
def test_shapes_and_frame_count(fitted_codec, training_wavs, length):
    wav = training_wavs[0][:length]
    frames = math.ceil(length / 320)
    codes = fitted_codec.encode(wav)
    assert codes.shape == (4, frames) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < 64
    assert fitted_codec.decode(codes).shape == (frames * 320,)
    batch = fitted_codec.encode(torch.stack([wav, wav.flip(0)]))
    assert batch.shape == (2, 4, frames)
    assert torch.equal(batch[0], codes)
    assert fitted_codec.decode(batch).shape == (2, frames * 320)


def test_more_levels_reduce_the_mel_error(fitted_codec, training_wavs):
    wav = training_wavs[0].reshape(1, -1)
    log_mel = fitted_codec.log_mel(wav)
    codes = fitted_codec.encode(wav)
    errors = [
        float((fitted_codec.codes_to_log_mel(codes[:, :levels]) - log_mel).pow(2).mean().sqrt())
        for levels in range(1, 5)
    ]
    # Measured: RMSE 0.80, 0.63, 0.55, 0.49 nepers for 1..4 levels of 64 codes.
    assert errors == sorted(errors, reverse=True) and len(set(errors)) == 4, errors
    assert errors[3] < 0.7 * errors[0], errors


def test_residual_levels_do_not_change_the_first(fitted_codec, training_wavs):
    one_level = MelKMeansCodec(n_codebooks=1, codebook_size=64).fit(training_wavs, n_iters=10)
    assert torch.equal(one_level.codebooks[0], fitted_codec.codebooks[0])


def test_encoding_the_decoded_audio_recovers_the_codes(fitted_codec, training_wavs):
    codes = fitted_codec.encode(training_wavs[1])
    recoded = fitted_codec.encode(fitted_codec.decode(codes))
    assert recoded.shape == codes.shape
    agreement = (recoded == codes).float().mean(dim=1)
    # Measured on this clip: 0.95 of the first level, about 0.8 of the others.
    assert agreement[0] > 0.85 and agreement.mean() > 0.7, agreement


def test_save_and_load_round_trip_exactly(fitted_codec, training_wavs, tmp_path):
    fitted_codec.save(tmp_path / "codec.safetensors")
    loaded = MelKMeansCodec.load(tmp_path / "codec.safetensors")
    assert loaded.config == fitted_codec.config
    assert torch.equal(loaded.codebooks, fitted_codec.codebooks)
    wav = training_wavs[1]
    codes = fitted_codec.encode(wav)
    assert torch.equal(loaded.encode(wav), codes)
    assert torch.equal(loaded.decode(codes), fitted_codec.decode(codes))


def test_decoded_held_out_clip_has_a_close_log_mel(fitted_codec, ljspeech):
    held_out = list(read_transcript(ljspeech / "transcripts_32.psv"))[-1]
    wav = read_wav(ljspeech / "wavs" / f"{held_out}.wav")
    decoded = fitted_codec.decode(fitted_codec.encode(wav))[: len(wav)]
    error = mean_abs_log_mel_error(fitted_codec, decoded, wav)
    log_mel = fitted_codec.log_mel(wav.reshape(1, -1))
    spread = float((log_mel - log_mel.mean()).abs().mean())
    # Loose bound: mean |log-mel difference| under 0.6 nepers (about 5 dB) and under a third of the clip's own
    # mean deviation from its average log-mel (measured: 0.48 against 1.67 on this clip, 0.40 on a training clip).
    assert error < 0.6 and error < spread / 3, (error, spread)


def test_silent_audio_encodes_and_decodes_to_finite_samples(fitted_codec):
    decoded = fitted_codec.decode(fitted_codec.encode(torch.zeros(24000)))
    assert decoded.shape == (24000,) and torch.isfinite(decoded).all()


def test_bad_inputs_are_rejected(fitted_codec):
    codes = torch.zeros(4, 10, dtype=torch.long)
    with pytest.raises(ValueError, match="levels"):
        fitted_codec.decode(codes[:2])
    with pytest.raises(ValueError, match=r"outside \[0, 64\)"):
        fitted_codec.decode(codes + 64)
    with pytest.raises(TypeError, match="integer"):
        fitted_codec.decode(codes.float())
    with pytest.raises(ValueError, match=r"\[T\] or \[B, T\]"):
        fitted_codec.encode(torch.zeros(0))
    with pytest.raises(TypeError, match="floating point"):
        fitted_codec.encode(torch.zeros(320, dtype=torch.int16))
    with pytest.raises(ValueError, match="n_codebooks"):
        MelKMeansCodec(n_codebooks=5)
    with pytest.raises(RuntimeError, match="fit"):
        MelKMeansCodec().encode(torch.zeros(320))
    with pytest.raises(ValueError, match="give more audio"):
        MelKMeansCodec(codebook_size=1024).fit([torch.zeros(24000)])


def test_codes_shorter_than_one_window_decode_to_their_length(fitted_codec):
    """One or two frames (a very short generation) decode to 320 samples a frame instead of failing."""
    for frames in (1, 2, 3):
        codes = torch.zeros(fitted_codec.n_codebooks, frames, dtype=torch.long)
        wav = fitted_codec.decode(codes)
        assert wav.shape == (frames * 320,) and torch.isfinite(wav).all()
