"""Long-horizon forecasting: LSSL and PGN/TPGN forecasters, a dated-series data module with the TPGN and
Time-Series-Library split protocols, the Lightning module, a CSV prediction writer and a forecast plot."""

from ...core.hippo import hippo
from .base import ForecastModel
from .data import EpochShuffleSampler, ForecastDataModule, FutureWindow, Standardizer, WindowDataset, split_rows
from .lit import Forecaster, forecast_metrics
from .lssl import LSSL, LSSLBlock, LSSLForecaster, LSSLLayer, causal_conv, discretize, krylov
from .norm import SeriesNorm
from .pgn import PGN, GroupedLinear
from .plots import plot_forecast
from .series import DatedSeries, parse_dates, read_csv_header, read_csv_series, seasonal_series, time_features
from .tpgn import TPGN, LongTermBranch, ShortTermBranch
from .writer import ForecastCSVWriter

__all__ = [
    "DatedSeries",
    "EpochShuffleSampler",
    "ForecastCSVWriter",
    "ForecastDataModule",
    "ForecastModel",
    "Forecaster",
    "FutureWindow",
    "GroupedLinear",
    "LSSL",
    "LSSLBlock",
    "LSSLForecaster",
    "LSSLLayer",
    "LongTermBranch",
    "PGN",
    "SeriesNorm",
    "ShortTermBranch",
    "Standardizer",
    "TPGN",
    "WindowDataset",
    "causal_conv",
    "discretize",
    "forecast_metrics",
    "hippo",
    "krylov",
    "parse_dates",
    "plot_forecast",
    "read_csv_header",
    "read_csv_series",
    "seasonal_series",
    "split_rows",
    "time_features",
]
