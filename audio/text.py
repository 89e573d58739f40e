"""Text to token ids: UTF-8 bytes shifted past the special ids, optionally of espeak-ng's IPA phonemes.

    "Hi" -> [BOS, ord("H") + 3, ord("i") + 3, EOS]      (vocabulary: 256 bytes + 3 specials = 259 ids)

Bytes cover every character, so no character is unknown; a multi-byte character becomes several tokens.
"""

import shutil
import subprocess

import torch

from .special_tokens import BOS, EOS, N_SPECIAL

VOCAB_SIZE = 256 + N_SPECIAL


def byte_tokens(text: str) -> torch.Tensor:
    """``text`` -> int64 ``[n_bytes + 2]``: BOS, the UTF-8 bytes of ``text`` plus ``N_SPECIAL``, EOS.

    Raises ``ValueError`` on text that is empty or only whitespace (nothing to speak)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text is empty or only whitespace: {text!r}")
    body = torch.tensor(list(text.encode("utf-8")), dtype=torch.long) + N_SPECIAL
    return torch.cat([torch.tensor([BOS]), body, torch.tensor([EOS])])


def tokens_to_text(tokens: torch.Tensor) -> str:
    """Inverse of ``byte_tokens``: int ``[L]`` -> str, dropping special ids; invalid UTF-8 becomes U+FFFD."""
    ids = [int(i) - N_SPECIAL for i in tokens.reshape(-1).tolist() if int(i) >= N_SPECIAL]
    return bytes(ids).decode("utf-8", errors="replace")


def phonemize(text: str, voice: str = "en-us") -> str:
    """``text`` -> IPA phonemes from the ``espeak-ng`` binary (deterministic), clauses joined by spaces.

    Raises ``RuntimeError`` when ``espeak-ng`` is not on the PATH (Debian: ``apt-get install -y espeak-ng``)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError("phonemes need the espeak-ng binary on the PATH; install it (apt-get install -y espeak-ng)")
    if not text.strip():
        raise ValueError(f"text is empty or only whitespace: {text!r}")
    result = subprocess.run(
        [binary, "-q", "--ipa", "-v", voice, "--stdin"], input=text, capture_output=True, text=True, check=True
    )
    return " ".join(result.stdout.split())


def text_tokens(text: str, use_phonemes: bool = False, voice: str = "en-us") -> torch.Tensor:
    """Token ids ``[L]`` of ``text``: its bytes, or the bytes of its IPA phonemes when ``use_phonemes``."""
    return byte_tokens(phonemize(text, voice) if use_phonemes else text)
