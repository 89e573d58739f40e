"""Time series with dates: read from a CSV file, or generated; and their calendar (time) features."""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FREQS = ("t", "h", "d")  # minutely, hourly, daily: which calendar features a step gets


@dataclass(frozen=True)
class DatedSeries:
    """``values [T, K]`` float64 observed at ``dates [T]`` (``datetime64[s]``), one column per name."""

    dates: np.ndarray
    names: tuple[str, ...]
    values: np.ndarray


def parse_dates(texts: list[str], source: str) -> np.ndarray:
    """ISO 8601 date strings (``2016-07-01 00:00:00``, ``2016-07-01T00:00``, ``2016-07-01``) as ``datetime64[s]``;
    ``ValueError`` naming the first bad row of ``source`` (data rows count from 0)."""
    try:
        return np.array(texts, dtype="datetime64[s]")
    except ValueError:
        for row, text in enumerate(texts):
            try:
                np.datetime64(text, "s")
            except ValueError:
                raise ValueError(
                    f"{source}: date {text!r} in data row {row} is not ISO 8601 (YYYY-MM-DD[ HH:MM[:SS]])"
                ) from None
        raise


def read_csv_header(path: str | Path) -> list[str]:
    """The column names in the first line of a CSV file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    with open(path, newline="") as f:
        header = next(csv.reader(f), None)
    if header is None:
        raise ValueError(f"{path} is empty")
    return [name.strip() for name in header]


def read_csv_series(path: str | Path, date_column: str = "date", columns: list[str] | None = None) -> DatedSeries:
    """The ``columns`` (default: every column but the date) of a CSV file with a header row and a date column.

    Raises ``ValueError`` for a missing date or value column, a value that is not a number, or a NaN/inf value,
    naming the column, the data row (from 0) and the file line.
    """
    path = Path(path)
    header = read_csv_header(path)
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row][1:]
    if date_column not in header:
        raise ValueError(f"{path} has no date column {date_column!r}; its columns are {header}")
    wanted = [name for name in header if name != date_column] if columns is None else list(columns)
    missing = [name for name in wanted if name not in header]
    if missing:
        raise ValueError(f"{path} has no column {missing[0]!r}; its columns are {header}")
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
    date_index = header.index(date_column)
    dates = parse_dates([row[date_index].strip() for row in rows], str(path))
    values = np.empty((len(rows), len(wanted)), dtype=np.float64)
    for j, name in enumerate(wanted):
        column = header.index(name)
        for row, fields in enumerate(rows):
            try:
                values[row, j] = float(fields[column])
            except ValueError:
                raise ValueError(
                    f"{path}: column {name!r}, data row {row} (line {row + 2}): {fields[column]!r} is not a number"
                ) from None
    bad = ~np.isfinite(values)
    if bad.any():
        row, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{path}: column {wanted[j]!r} has {int(bad[:, j].sum())} NaN/inf values, the first in data row {row} "
            f"(line {row + 2}); fill or drop them before forecasting"
        )
    return DatedSeries(dates, tuple(wanted), values)


def seasonal_series(n_steps: int = 2400, n_channels: int = 3, noise: float = 0.2, seed: int = 0) -> DatedSeries:
    """A generated hourly series ``[n_steps, n_channels]`` from 2020-01-01 00:00, named ``s0, s1, ...``.

    Channel ``c``: a daily cycle (period 24 h) and a weekly one (168 h) with random amplitudes and phases, a slow
    linear trend, and AR(1) noise (coefficient 0.8, innovation std ``noise``): enough structure for a forecaster
    to learn in seconds, no file needed.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
        raise ValueError(f"n_steps must be an int >= 2, got {n_steps!r}")
    if isinstance(n_channels, bool) or not isinstance(n_channels, int) or n_channels < 1:
        raise ValueError(f"n_channels must be a positive int, got {n_channels!r}")
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps, dtype=np.float64)[:, None]
    daily_amp, weekly_amp = rng.uniform(0.5, 1.5, n_channels), rng.uniform(0.2, 0.8, n_channels)
    daily_phase, weekly_phase = rng.uniform(0, 2 * np.pi, (2, n_channels))
    trend = rng.uniform(-1.0, 1.0, n_channels) / n_steps
    values = (
        daily_amp * np.sin(2 * np.pi * t / 24 + daily_phase)
        + weekly_amp * np.sin(2 * np.pi * t / 168 + weekly_phase)
        + trend * t
    )
    innovations = noise * rng.standard_normal((n_steps, n_channels))
    ar = np.zeros_like(innovations)
    for k in range(n_steps):
        ar[k] = innovations[k] + (0.8 * ar[k - 1] if k else 0.0)
    dates = np.datetime64("2020-01-01T00:00:00", "s") + np.arange(n_steps).astype("timedelta64[h]")
    return DatedSeries(dates, tuple(f"s{c}" for c in range(n_channels)), values + ar)


def time_features(dates: np.ndarray, freq: str = "h") -> np.ndarray:
    """Calendar features ``[T, F]`` float32 of ``dates [T]``, each scaled to ``[-0.5, 0.5]`` (Time-Series-Library's
    ``timeF``): ``freq="h"`` gives hour/23, weekday/6 (Monday 0), (day of month - 1)/30, (day of year - 1)/365,
    each minus 0.5; ``"t"`` adds minute/59 in front; ``"d"`` drops the hour."""
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {FREQS}, got {freq!r}")
    seconds = dates.astype("datetime64[s]")
    days = seconds.astype("datetime64[D]")
    minute_of_day = (seconds - days).astype(np.int64) // 60
    features = {
        "minute": (minute_of_day % 60) / 59.0,
        "hour": (minute_of_day // 60) / 23.0,
        "weekday": ((days.astype(np.int64) + 3) % 7) / 6.0,  # 1970-01-01 was a Thursday
        "day": (days - days.astype("datetime64[M]")).astype(np.int64) / 30.0,
        "year_day": (days - days.astype("datetime64[Y]")).astype(np.int64) / 365.0,
    }
    names = {"t": list(features), "h": list(features)[1:], "d": list(features)[2:]}[freq]
    return (np.stack([features[name] for name in names], axis=1) - 0.5).astype(np.float32)


def n_time_features(freq: str) -> int:
    """How many features ``time_features`` gives for ``freq``."""
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {FREQS}, got {freq!r}")
    return {"t": 5, "h": 4, "d": 3}[freq]
