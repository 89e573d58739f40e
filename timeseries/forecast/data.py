"""LightningDataModule for forecasting: sliding windows over a dated series, two published split protocols."""

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .series import (
    FREQS,
    DatedSeries,
    n_time_features,
    read_csv_header,
    read_csv_series,
    seasonal_series,
    time_features,
)

FEATURES = ("S", "M", "MS")
PROTOCOLS = ("tpgn", "ett")
SPLITS = ("train", "val", "test")
PREDICT_SPLITS = (*SPLITS, "future")


def split_rows(n_rows: int, input_len: int, protocol: str, ett_borders: tuple[int, int, int]) -> dict[str, range]:
    """The rows each split's windows read, as ranges over ``0 .. n_rows``.

    * ``"tpgn"`` (TPGN/WITRAN's ``Dataset_Custom``): 60 / 20 / 20 % by rows, ``n_train = int(0.6 n)``,
      ``n_test = int(0.2 n)``, validation the rest;
    * ``"ett"`` (Time-Series-Library's ``Dataset_ETT_hour``): fixed borders, 12 / 4 / 4 months of hourly ETT
      data = ``(8640, 11520, 14400)``; rows after the last border are unused.

    Validation and test start ``input_len`` rows before their border, so that their first forecast begins
    right at it (both libraries do this); the input windows overlap the previous split, the targets do not.
    """
    if protocol == "tpgn":
        n_train, n_test = int(n_rows * 0.6), int(n_rows * 0.2)
        ends = (n_train, n_rows - n_test, n_rows)
    else:
        ends = tuple(ett_borders)
        if not 0 < ends[0] < ends[1] < ends[2]:
            raise ValueError(f"ett_borders must be increasing positive row counts, got {ett_borders}")
        if ends[2] > n_rows:
            raise ValueError(f"the ett protocol needs {ends[2]} rows (borders {ett_borders}), the series has {n_rows}")
    starts = (0, ends[0] - input_len, ends[1] - input_len)
    return {split: range(max(start, 0), end) for split, start, end in zip(SPLITS, starts, ends, strict=True)}


class Standardizer:
    """Per-column standard scaling ``(v - mean) / std`` fitted on ``fit_rows [n, K]`` (population std; a constant
    column gets std 1, as scikit-learn's ``StandardScaler``)."""

    def __init__(self, fit_rows: np.ndarray) -> None:
        self.mean = fit_rows.mean(axis=0)
        std = fit_rows.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std


class WindowDataset(Dataset):
    """Every window of ``input_len + horizon`` consecutive rows of ``values [T, K]`` inside ``rows``.

    Item ``i`` (the window starting at row ``rows.start + i``) is a dict: ``x [input_len, K]``,
    ``x_mark [input_len, F]``, ``y [horizon, K_target]`` (the ``targets`` columns), ``y_mark [horizon, F]`` and
    ``index`` (``i``).
    """

    def __init__(
        self, values: torch.Tensor, marks: torch.Tensor, rows: range, input_len: int, horizon: int, targets: slice
    ) -> None:
        self.values, self.marks, self.rows = values, marks, rows
        self.input_len, self.horizon, self.targets = input_len, horizon, targets

    def __len__(self) -> int:
        return max(len(self.rows) - self.input_len - self.horizon + 1, 0)

    def horizon_rows(self, index: int) -> range:
        """The rows window ``index`` forecasts."""
        start = self.rows.start + index + self.input_len
        return range(start, start + self.horizon)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = self.rows.start + index
        mid, end = start + self.input_len, start + self.input_len + self.horizon
        return {
            "x": self.values[start:mid],
            "x_mark": self.marks[start:mid],
            "y": self.values[mid:end, self.targets],
            "y_mark": self.marks[mid:end],
            "index": torch.tensor(index),
        }


class FutureWindow(Dataset):
    """One item: the last ``input_len`` rows as input and the time features of the ``horizon`` steps after the end
    of the series (no ``y``: the future is unknown)."""

    def __init__(self, values: torch.Tensor, marks: torch.Tensor, future_marks: torch.Tensor, input_len: int) -> None:
        self.x, self.x_mark, self.y_mark = values[-input_len:], marks[-input_len:], future_marks

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x, "x_mark": self.x_mark, "y_mark": self.y_mark, "index": torch.tensor(index)}


class EpochShuffleSampler(Sampler[int]):
    """A random order of ``range(n)`` fixed by ``(seed, epoch)``; Lightning calls ``set_epoch`` before every
    epoch, so a run resumed from a checkpoint sees the batches the uninterrupted run saw."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())


class ForecastDataModule(L.LightningDataModule):
    """Sliding windows over a CSV file with a date column (or a generated seasonal series), scaled and split.

    Batches are dicts: ``x [B, input_len, C]``, ``x_mark [B, input_len, F]``, ``y [B, horizon, C_target]``,
    ``y_mark [B, horizon, F]``, ``index [B]`` (window number within its split), all float32 but ``index``.
    ``features``: ``"S"`` the target alone (C = C_target = 1), ``"M"`` every column (C = C_target, target
    last), ``"MS"`` every column in, the target out (C_target = 1). Values are scaled per column with the mean and
    std of the training rows only; ``inverse_transform`` maps target values back to the file's units.

    Args:
        path: CSV file with a header row; None uses ``seasonal_series`` (columns ``s0, s1, ...``).
        date_column: name of the date column (ISO 8601 dates).
        target: the target column; None takes the last column (Time-Series-Library's convention: ``OT`` in ETT).
        features: ``"S"``, ``"M"`` or ``"MS"``.
        input_len: steps of each input window.
        horizon: steps forecast.
        protocol: ``"tpgn"`` (60/20/20 % by rows) or ``"ett"`` (Time-Series-Library's ETT borders); see
            ``split_rows``.
        ett_borders: ends of train, validation and test in rows for ``protocol="ett"`` (hourly ETT: 12, 16 and
            20 months of 30 days; multiply by 4 for the 15-minute ETTm files).
        freq: calendar features, ``"h"`` (4: hour, weekday, day of month, day of year), ``"t"`` (5) or ``"d"`` (3).
        scale: standardise the values (the test metrics of both protocols are in these scaled units).
        batch_size: windows per batch.
        drop_last_test: drop the last incomplete test batch. Off: every test window counts. The TPGN/WITRAN and
            many Time-Series-Library scripts drop it, which changes the metric with the batch size; switch it on
            only to reproduce their numbers, and say so.
        predict_split: windows ``lrnn predict`` forecasts: ``"test"`` (default), ``"train"``, ``"val"``, or
            ``"future"`` (the ``horizon`` steps after the last row; dates continue at the last step's spacing).
        synthetic_steps, synthetic_channels: length and width of the generated series (``path=None``).
        seed: seed of the training order (per epoch) and of the generated series.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        path: str | None = None,
        date_column: str = "date",
        target: str | None = None,
        features: str = "S",
        input_len: int = 168,
        horizon: int = 168,
        protocol: str = "tpgn",
        ett_borders: tuple[int, int, int] = (8640, 11520, 14400),
        freq: str = "h",
        scale: bool = True,
        batch_size: int = 32,
        drop_last_test: bool = False,
        predict_split: str = "test",
        synthetic_steps: int = 2400,
        synthetic_channels: int = 3,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        choices = (("features", features, FEATURES), ("protocol", protocol, PROTOCOLS), ("freq", freq, FREQS))
        for name, value, allowed in (*choices, ("predict_split", predict_split, PREDICT_SPLITS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name, value in (("input_len", input_len), ("horizon", horizon), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.save_hyperparameters()
        self.series: DatedSeries | None = None

    @property
    def n_time_features(self) -> int:
        """``F``, calendar features per step."""
        return n_time_features(self.hparams.freq)

    def load(self) -> DatedSeries:
        """The series' used columns, target last (read or generated once)."""
        if self.series is None:
            hp = self.hparams
            if hp.path is None:
                source = seasonal_series(hp.synthetic_steps, hp.synthetic_channels, seed=hp.seed)
                names = list(source.names)
            else:
                names = [name for name in read_csv_header(hp.path) if name != hp.date_column]
            target = names[-1] if hp.target is None else hp.target
            if target not in names:
                where = hp.path or "the generated series"
                raise ValueError(f"target column {target!r} is not in {where}; its value columns are {names}")
            columns = [target] if hp.features == "S" else [name for name in names if name != target] + [target]
            if hp.path is None:
                picked = [source.names.index(name) for name in columns]
                self.series = DatedSeries(source.dates, tuple(columns), source.values[:, picked])
            else:
                self.series = read_csv_series(Path(hp.path), hp.date_column, columns)
        return self.series

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Input columns, target last."""
        return self.load().names

    @property
    def target_names(self) -> tuple[str, ...]:
        """Forecast columns."""
        return self.channel_names[-1:] if self.hparams.features == "MS" else self.channel_names

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "splits"):
            return
        hp = self.hparams
        series = self.load()
        rows = split_rows(len(series.dates), hp.input_len, hp.protocol, tuple(hp.ett_borders))
        window = hp.input_len + hp.horizon
        for split, span in rows.items():
            if len(span) < window:
                raise ValueError(
                    f"the {split} split has {len(span)} rows ({span.start}..{span.stop - 1} of {len(series.dates)}), "
                    f"fewer than input_len + horizon = {hp.input_len} + {hp.horizon}: use a longer series or "
                    f"shorter windows"
                )
        values = series.values
        self.scaler = Standardizer(values[rows["train"].start : rows["train"].stop])
        if hp.scale:
            values = self.scaler.transform(values)
        self.values = torch.from_numpy(values.astype(np.float32))
        self.marks = torch.from_numpy(time_features(series.dates, hp.freq))
        targets = slice(-1, None) if hp.features == "MS" else slice(None)
        self.splits = {
            split: WindowDataset(self.values, self.marks, span, hp.input_len, hp.horizon, targets)
            for split, span in rows.items()
        }
        self.future_dates = series.dates[-1] + (series.dates[-1] - series.dates[-2]) * np.arange(1, hp.horizon + 1)
        future_marks = torch.from_numpy(time_features(self.future_dates, hp.freq))
        self.future = FutureWindow(self.values, self.marks, future_marks, hp.input_len)

    def target_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` ``[C_target]`` float32 of the target columns (identity when ``scale`` is off)."""
        count = len(self.target_names)
        if not self.hparams.scale:
            return torch.zeros(count), torch.ones(count)
        mean, std = self.scaler.mean[-count:], self.scaler.std[-count:]
        return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)

    def horizon_dates(self, index: int) -> np.ndarray:
        """Dates ``[horizon]`` of the steps that window ``index`` of ``predict_split`` forecasts."""
        if self.hparams.predict_split == "future":
            return self.future_dates
        rows = self.splits[self.hparams.predict_split].horizon_rows(index)
        return self.load().dates[rows.start : rows.stop]

    def _loader(self, dataset: Dataset, drop_last: bool = False, sampler: Sampler | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.hparams.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        train = self.splits["train"]
        return self._loader(train, drop_last=True, sampler=EpochShuffleSampler(len(train), self.hparams.seed))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits["val"])

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.splits["test"], drop_last=self.hparams.drop_last_test)

    def predict_dataloader(self) -> DataLoader:
        split = self.hparams.predict_split
        return self._loader(self.future if split == "future" else self.splits[split])
