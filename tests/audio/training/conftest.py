"""Fixtures of the training tests: a tiny codec fitted on shared LJSpeech clips, data modules over them, and the
dimensions of a tiny model."""

from pathlib import Path

import pytest
from lrnn.audio.codec.mel_kmeans import MelKMeansCodec
from lrnn.audio.data import SpeechDataModule

CODEBOOK_SIZE = 32


@pytest.fixture(scope="session")
def tiny_codec_path(training_wavs, tmp_path_factory) -> Path:
    """A 1-level codec of 32 codes over 32 mel bands, fitted on six shared clips."""
    path = tmp_path_factory.mktemp("codec") / "codec.safetensors"
    MelKMeansCodec(codebook_size=CODEBOOK_SIZE, n_mels=32).fit(training_wavs, n_iters=10).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_dims() -> dict:
    """``LinaSpeechModule`` arguments of a model of about 10^5 parameters over the tiny codec."""
    return dict(
        codebook_size=CODEBOOK_SIZE,
        d_model=32,
        num_layers=1,
        num_heads=2,
        text_layers=1,
        text_heads=2,
        position_dim=16,
        sample_max_frames=40,
    )


@pytest.fixture
def clip_data(ljspeech, tiny_codec_path, tmp_path):
    """``clip_data(n_clips, **kwargs)``: a prepared, set-up ``SpeechDataModule`` over the first ``n_clips``
    shared clips, encoded by the tiny codec."""
    return lambda n_clips, **kwargs: _clip_data(ljspeech, tiny_codec_path, tmp_path, n_clips, **kwargs)


def _clip_data(ljspeech: Path, codec_path: Path, folder: Path, n_clips: int, **kwargs) -> SpeechDataModule:
    lines = (ljspeech / "transcripts_32.psv").read_text(encoding="utf-8").splitlines()[:n_clips]
    transcript = folder / "transcript.psv"
    transcript.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = SpeechDataModule(
        wav_dir=str(ljspeech / "wavs"),
        transcript_path=str(transcript),
        codec_path=str(codec_path),
        codes_cache_path=str(folder / "codes.safetensors"),
        **kwargs,
    )
    data.prepare_data()
    data.setup("fit")
    return data
