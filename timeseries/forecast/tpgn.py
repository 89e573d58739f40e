"""Temporal PGN (TPGN, Jia et al., NeurIPS 2024), following the authors' code (Water2sea/TPGN, ``models/TPGN.py``).

The input window ``[B, L, C]`` is folded by the period ``P`` into ``R = L / P`` rows of ``P`` steps
(``[B, R, P, C]``); each step carries its value and its time features. Every channel has its own weights:

* long-term branch: for every column (phase within the period), a PGN runs down the ``R`` rows with window
  ``R - 1``; a linear layer over the rows collapses its output into ``d_model`` values per column;
* short-term branch: a linear layer over each row's ``P`` steps gives ``d_model`` values per row; a linear layer
  over the rows turns those into one ``d_model`` vector, shared by all columns;
* forecast: ``[short, long]`` (``2 d_model`` per column) -> ``ceil(H / P)`` values per column, unfolded into
  ``ceil(H / P) * P`` steps, of which the first ``H`` are the forecast.

With ``norm``, each input window is standardised per channel (``SeriesNorm``) and the forecast mapped back.
"""

import math

import torch
from torch import nn

from .base import ForecastModel
from .norm import SeriesNorm
from .pgn import PGN, GroupedLinear


class LongTermBranch(nn.Module):
    """``z [B, R, P, C, d_in] -> [B, P, C, d_model]``: a PGN down the rows of each column, then a linear map of the
    ``R`` rows, separate weights per channel."""

    def __init__(self, rows: int, channels: int, d_in: int, d_model: int) -> None:
        super().__init__()
        self.channels, self.d_model = channels, d_model
        self.pgn = PGN(d_in, d_model, window=rows - 1, groups=channels)
        self.rows = GroupedLinear(channels, rows * d_model, d_model)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.pgn(z.transpose(1, 2).flatten(0, 1))  # columns as sequences of rows: [B * P, R, C, d_model]
        h = h.transpose(1, 2).flatten(-2)  # [B * P, C, R * d_model]
        return self.rows(h).unflatten(0, z.shape[:1] + z.shape[2:3])


class ShortTermBranch(nn.Module):
    """``z [B, R, P, C, d_in] -> [B, P, C, d_model]``: a linear map of each row's ``P`` steps, then of the ``R``
    rows, repeated for every column; separate weights per channel."""

    def __init__(self, rows: int, period: int, channels: int, d_in: int, d_model: int) -> None:
        super().__init__()
        self.channels, self.d_model = channels, d_model
        self.within_row = GroupedLinear(channels, period * d_in, d_model)
        self.across_rows = GroupedLinear(channels, rows * d_model, d_model)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch, rows, period = z.shape[:3]
        per_row = self.within_row(z.transpose(2, 3).flatten(-2))  # [B, R, C, d_model]
        summary = self.across_rows(per_row.transpose(1, 2).flatten(-2))  # [B, C, d_model]
        return summary.unsqueeze(1).expand(batch, period, self.channels, self.d_model)


class TPGN(ForecastModel):
    """TPGN forecaster: ``(x [B, L, C], x_mark [B, L, T_f], y_mark) -> [B, H, C]`` (``y_mark`` unused).

    Args:
        input_len: ``L``, a multiple of ``period`` with at least two periods (the PGN's window is ``L/P - 1``).
        horizon: ``H``.
        n_channels: ``C``.
        n_time_features: ``T_f`` (4 for hourly data).
        period: ``P``, steps per row (24 for hourly data).
        d_model: width of each branch, per channel (ETTh1 in the paper: 2, 2, 2, 8 for H = 168, 336, 720, 1440).
        norm: standardise each input window per channel and undo it on the forecast.
    """

    def __init__(
        self,
        input_len: int = 168,
        horizon: int = 168,
        n_channels: int = 1,
        n_time_features: int = 4,
        period: int = 24,
        d_model: int = 2,
        norm: bool = True,
    ) -> None:
        super().__init__(input_len, horizon, n_channels, n_time_features)
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValueError(f"period must be a positive int, got {period!r}")
        if input_len % period != 0:
            raise ValueError(f"the period ({period}) must divide input_len ({input_len}): TPGN folds the window by it")
        if input_len // period < 2:
            raise ValueError(f"input_len ({input_len}) must hold at least two periods of {period} steps")
        if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 1:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}")
        self.period, self.rows, self.norm = period, input_len // period, norm
        self.out_rows = math.ceil(horizon / period)
        d_in = 1 + n_time_features
        self.long_term = LongTermBranch(self.rows, n_channels, d_in, d_model)
        self.short_term = ShortTermBranch(self.rows, period, n_channels, d_in, d_model)
        self.head = GroupedLinear(n_channels, 2 * d_model, self.out_rows)

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor, y_mark: torch.Tensor) -> torch.Tensor:
        self.check_inputs(x, x_mark, y_mark)
        batch, channels = x.shape[0], self.n_channels
        stats = SeriesNorm(x) if self.norm else None
        if stats is not None:
            x = stats.normalize(x)
        grid = (batch, self.rows, self.period)
        marks = x_mark.reshape(*grid, 1, -1).expand(*grid, channels, self.n_time_features)
        z = torch.cat([x.reshape(*grid, channels, 1), marks], dim=-1)  # [B, R, P, C, 1 + T_f]
        features = torch.cat([self.short_term(z), self.long_term(z)], dim=-1)  # [B, P, C, 2 d_model]
        out = self.head(features).permute(0, 3, 1, 2)  # [B, out_rows, P, C]
        y = out.reshape(batch, self.out_rows * self.period, channels)[:, : self.horizon]
        return stats.denormalize(y) if stats is not None else y
