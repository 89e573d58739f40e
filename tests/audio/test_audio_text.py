import shutil

import pytest
import torch
from lrnn.audio.special_tokens import BOS, EOS, N_SPECIAL
from lrnn.audio.text import VOCAB_SIZE, byte_tokens, phonemize, text_tokens, tokens_to_text


def test_bytes_are_shifted_past_the_special_ids():
    assert byte_tokens("Hi").tolist() == [BOS, ord("H") + N_SPECIAL, ord("i") + N_SPECIAL, EOS]


def test_any_character_round_trips_within_the_vocabulary():
    text = "Café — naïve 日本語 ✓"
    tokens = byte_tokens(text)
    assert tokens.dtype == torch.long
    assert len(tokens) == len(text.encode("utf-8")) + 2
    assert int(tokens.max()) < VOCAB_SIZE
    assert tokens_to_text(tokens) == text


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_an_error(text):
    with pytest.raises(ValueError, match="empty"):
        byte_tokens(text)


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="str"):
        byte_tokens(b"bytes")


@pytest.mark.skipif(shutil.which("espeak-ng") is not None, reason="espeak-ng is installed")
def test_phonemes_without_espeak_ng_say_what_is_missing():
    with pytest.raises(RuntimeError, match="espeak-ng"):
        text_tokens("hello", use_phonemes=True)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng binary")
def test_phonemes_are_deterministic_ipa():
    assert phonemize("hello world") == phonemize("hello world")
    assert "w" in phonemize("hello world")
