"""Word and character error rates of recognised text against the input text, after one normalisation.

``normalize_text``: Unicode NFKC, lower case, curly apostrophes made straight, every run of characters other than
letters, digits and apostrophes inside a word made one space, ends stripped. "Mr. Smith's   dog—ran!" becomes
"mr smith's dog ran". Numbers are not spelt out, so a digit in the input text counts as an error against a
recogniser that writes words.

The rates are torchmetrics' ``WordErrorRate`` and ``CharErrorRate`` over the normalised texts: edit distance
(substitutions + deletions + insertions) over the number of reference words (characters, spaces included),
summed over all pairs before dividing.
"""

import re
import unicodedata
from collections.abc import Sequence

from torchmetrics.text import CharErrorRate, WordErrorRate

_SEPARATOR = re.compile(r"[^\w']+|_|(?<!\w)'|'(?!\w)")


def normalize_text(text: str) -> str:
    """``text`` -> lower-case words of letters, digits and inner apostrophes, separated by single spaces."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(_SEPARATOR.sub(" ", text).split())


def error_rates(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``{"wer", "cer"}`` of the ``hypotheses`` (recognised) against the ``references`` (input texts), pair by pair,
    both normalised. Raises ``ValueError`` when a reference has no words after normalisation."""
    if len(hypotheses) != len(references) or len(references) == 0:
        raise ValueError(f"need one hypothesis per reference, one or more: got {len(hypotheses)}, {len(references)}")
    hypotheses = [normalize_text(text) for text in hypotheses]
    normalized = [normalize_text(text) for text in references]
    empty = [text for text, words in zip(references, normalized, strict=True) if not words]
    if empty:
        raise ValueError(f"references with no words after normalisation: {empty[:5]}; give texts with words")
    return {
        "wer": WordErrorRate()(hypotheses, normalized).item(),
        "cer": CharErrorRate()(hypotheses, normalized).item(),
    }
