"""Offline evaluation of synthesised speech: MCD-DTW, speaker similarity, WER/CER by speech recognition.

``python -m lrnn.audio.evaluation --help`` scores a folder of generated clips (``evaluate``). Speaker similarity
and recognition need the ``audio-eval`` extra (Resemblyzer, PocketSphinx: their weights ship in their wheels).
"""

from .asr import PocketSphinxASR
from .dtw import dtw_path
from .error_rate import error_rates, normalize_text
from .evaluate import evaluate
from .mcd import cepstrum, mcd_dtw, mel_cepstrum
from .report import summary_table, write_report
from .speaker import SpeakerEncoder, speaker_similarity

__all__ = [
    "PocketSphinxASR",
    "SpeakerEncoder",
    "cepstrum",
    "dtw_path",
    "error_rates",
    "evaluate",
    "mcd_dtw",
    "mel_cepstrum",
    "normalize_text",
    "speaker_similarity",
    "summary_table",
    "write_report",
]
