"""Sequence classification: a synthetic waveform task and a classifier built from registry mixers."""

from .model import MixerBlock, MixerClassifier
from .waveforms import SHAPES, make_waveforms, waveform_class_names

__all__ = ["SHAPES", "MixerBlock", "MixerClassifier", "make_waveforms", "waveform_class_names"]
