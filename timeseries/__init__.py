"""Time-series heads: sequence classification, dynamical-systems reconstruction, forecasting."""

from .dsr import ALRNN, PLRNN, ClippedShallowPLRNN, ShallowPLRNN

__all__ = ["ALRNN", "PLRNN", "ClippedShallowPLRNN", "ShallowPLRNN"]
