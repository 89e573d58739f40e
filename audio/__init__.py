"""Lina-Speech: gated-linear-attention text-to-speech with initial-state voice cloning."""

from .codec import AudioCodec, EncodecCodec, MelKMeansCodec, WavTokenizerCodec
from .data import SpeechDataModule, collate_speech, read_transcript
from .delay import apply_delay, lina_delay, lina_undelay, undo_delay
from .espeak_corpus import write_espeak_corpus
from .model import LinaSpeech, VoiceState
from .special_tokens import BOS, EOS, N_SPECIAL, PAD
from .text import VOCAB_SIZE, byte_tokens, phonemize, text_tokens, tokens_to_text
from .wav import read_wav, write_wav

__all__ = [
    "AudioCodec",
    "BOS",
    "EOS",
    "EncodecCodec",
    "LinaSpeech",
    "MelKMeansCodec",
    "N_SPECIAL",
    "PAD",
    "SpeechDataModule",
    "VOCAB_SIZE",
    "VoiceState",
    "WavTokenizerCodec",
    "apply_delay",
    "byte_tokens",
    "collate_speech",
    "lina_delay",
    "lina_undelay",
    "phonemize",
    "read_transcript",
    "read_wav",
    "text_tokens",
    "tokens_to_text",
    "undo_delay",
    "write_espeak_corpus",
    "write_wav",
]
