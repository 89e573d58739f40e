import importlib.util

import pytest
from lrnn.audio.codec.adapters import EncodecCodec, WavTokenizerCodec


def test_missing_encodec_weights_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="EnCodec weights not found at .*missing.th"):
        EncodecCodec(tmp_path / "missing.th")


def test_missing_wavtokenizer_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="WavTokenizer config not found"):
        WavTokenizerCodec(tmp_path / "config.yaml", tmp_path / "model.ckpt")
    (tmp_path / "config.yaml").write_text("model: {}\n")
    with pytest.raises(FileNotFoundError, match="WavTokenizer weights not found at .*model.ckpt"):
        WavTokenizerCodec(tmp_path / "config.yaml", tmp_path / "model.ckpt")


@pytest.mark.skipif(importlib.util.find_spec("encodec") is not None, reason="encodec is installed")
def test_encodec_without_the_package_says_how_to_install(tmp_path):
    weights = tmp_path / "encodec_24khz.th"
    weights.write_bytes(b"")
    with pytest.raises(ImportError, match="pip install encodec"):
        EncodecCodec(weights)


@pytest.mark.skipif(importlib.util.find_spec("decoder") is not None, reason="a 'decoder' package is importable")
def test_wavtokenizer_without_its_code_says_where_to_get_it(tmp_path):
    (tmp_path / "config.yaml").write_text("model: {}\n")
    (tmp_path / "model.ckpt").write_bytes(b"")
    with pytest.raises(ImportError, match="WavTokenizer"):
        WavTokenizerCodec(tmp_path / "config.yaml", tmp_path / "model.ckpt")


def test_encodec_bandwidth_is_checked_first(tmp_path):
    with pytest.raises(ValueError, match="bandwidth_kbps"):
        EncodecCodec(tmp_path / "missing.th", bandwidth_kbps=5.0)
