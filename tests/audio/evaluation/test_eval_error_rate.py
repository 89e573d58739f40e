"""Text normalisation and corpus-level WER/CER."""

import pytest
from lrnn.audio.evaluation.error_rate import error_rates, normalize_text


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("Mr. Smith's   dog—ran!", "mr smith's dog ran"),
        ("“Don’t” 'quote' me_please", "don't quote me please"),
        ("ÉCOLE №5, ﬁne", "école no5 fine"),
        ("  ...  ", ""),
    ],
)
def test_normalisation(text, normalized):
    assert normalize_text(text) == normalized


def test_rates_count_edits_over_all_reference_words():
    rates = error_rates(["him being comparatively mater", "the end"], ["In being comparatively modern.", "The end."])
    assert rates["wer"] == pytest.approx(2 / 6)  # "in" and "modern" substituted, 6 reference words
    assert error_rates(["the end"], ["The END!"]) == {"wer": 0.0, "cer": 0.0}


def test_a_reference_without_words_or_a_count_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"no words after normalisation: \['\.\.\.'\]"):
        error_rates(["a"], ["..."])
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        error_rates(["a", "b"], ["a"])
