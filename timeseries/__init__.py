"""Time-series heads: sequence classification, dynamical-systems reconstruction, forecasting."""

from .dsr import ALRNN, PLRNN, ClippedShallowPLRNN, ShallowPLRNN
from .forecast import PGN, TPGN, ForecastCSVWriter, ForecastDataModule, Forecaster, LSSLForecaster, plot_forecast

__all__ = [
    "ALRNN",
    "PLRNN",
    "ClippedShallowPLRNN",
    "ShallowPLRNN",
    "ForecastCSVWriter",
    "ForecastDataModule",
    "Forecaster",
    "LSSLForecaster",
    "PGN",
    "TPGN",
    "plot_forecast",
]
