"""Audio codecs: 24 kHz waveforms <-> discrete codes at 75 frames/s."""

from .adapters import EncodecCodec, WavTokenizerCodec
from .base import AudioCodec
from .mel_kmeans import MelKMeansCodec

__all__ = ["AudioCodec", "EncodecCodec", "MelKMeansCodec", "WavTokenizerCodec"]
