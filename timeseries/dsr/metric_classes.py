"""torchmetrics faces of the DSR measures: ``Metric`` classes that accumulate series and compute with ``metrics.py``.

Each ``update`` takes one pair of series ``[T, N]`` (torch tensors, time first), in the argument order of the
plain function; ``compute`` returns a float64 scalar tensor. With one update the result is the plain function's:

- :class:`StateSpaceDivergence`: ``update(x_true, x_gen)``; D_stsp of all points given so far, pooled (the
  occupation measure ignores time order, and the bin box comes from all true points);
- :class:`PowerSpectrumError`: ``update(x_true, x_gen)``; the mean of D_H over the pairs (spectra need unbroken
  series, so pairs are not joined);
- :class:`PredictionError`: ``update(predictions, x_true)``; the mean squared error over all predicted points
  (the PE of each pair weighted by its number of predictions).

NaN (a diverged generated series) propagates to the result, as in the plain functions.
"""

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .metrics import power_spectrum_error, prediction_error, state_space_divergence


def _check_pair(first: torch.Tensor, second: torch.Tensor, names: tuple[str, str]) -> None:
    """Both ``[T, N]`` tensors with the same ``N``."""
    for x, name in zip((first, second), names, strict=True):
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise ValueError(f"{name} must be a [T, N] torch.Tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if first.shape[1] != second.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same N, got {tuple(first.shape)} and {tuple(second.shape)}"
        )


class StateSpaceDivergence(Metric):
    """D_stsp (:func:`~lrnn.timeseries.dsr.metrics.state_space_divergence`) between all true and all generated points.

    Args:
        n_bins: bins per dimension of the binned estimate (``N ≤ max_bin_dims``).
        scaling: variance σ² of the Gaussian-mixture estimate (``N > max_bin_dims``).
        max_bin_dims: the most dimensions estimated by binning.
        kwargs: for ``torchmetrics.Metric``.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, n_bins: int = 30, scaling: float = 1.0, max_bin_dims: int = 5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_bins, self.scaling, self.max_bin_dims = n_bins, scaling, max_bin_dims
        self.add_state("x_true", default=[], dist_reduce_fx="cat")
        self.add_state("x_gen", default=[], dist_reduce_fx="cat")

    def update(self, x_true: torch.Tensor, x_gen: torch.Tensor) -> None:
        """Add the points of ``x_true [T, N]`` (finite) and ``x_gen [T', N]``."""
        _check_pair(x_true, x_gen, ("x_true", "x_gen"))
        if not torch.isfinite(x_true).all():
            raise ValueError(f"x_true contains NaN or inf ({int((~torch.isfinite(x_true)).sum())} entries)")
        self.x_true.append(x_true.detach())
        self.x_gen.append(x_gen.detach())

    def compute(self) -> torch.Tensor:
        value = state_space_divergence(
            dim_zero_cat(self.x_true),
            dim_zero_cat(self.x_gen),
            self.n_bins,
            scaling=self.scaling,
            max_bin_dims=self.max_bin_dims,
        )
        return torch.tensor(value, dtype=torch.float64)


class _MeanOfPairs(Metric):
    """Weighted mean of a per-pair value: states ``total`` (Σ weight · value) and ``weight`` (Σ weight)."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def _add(self, value: float, weight: float) -> None:
        self.total += value * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return self.total / self.weight


class PowerSpectrumError(_MeanOfPairs):
    """D_H (:func:`~lrnn.timeseries.dsr.metrics.power_spectrum_error`), averaged over the pairs given.

    Args:
        smoothing: σ of the Gaussian smoothing of the power spectra, in frequency bins.
        kwargs: for ``torchmetrics.Metric``.
    """

    def __init__(self, smoothing: float = 20.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.smoothing = smoothing

    def update(self, x_true: torch.Tensor, x_gen: torch.Tensor) -> None:
        """Add the D_H of ``x_true [T, N]`` (finite) and ``x_gen [T, N]``."""
        _check_pair(x_true, x_gen, ("x_true", "x_gen"))
        self._add(power_spectrum_error(x_true, x_gen, self.smoothing), 1.0)


class PredictionError(_MeanOfPairs):
    """PE(n) (:func:`~lrnn.timeseries.dsr.metrics.prediction_error`) over all predictions given.

    The model's predictions come from :func:`~lrnn.timeseries.dsr.metrics.n_step_predictions`.

    Args:
        n: the prediction horizon in steps.
        kwargs: for ``torchmetrics.Metric``.
    """

    def __init__(self, n: int = 20, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n = n

    def update(self, predictions: torch.Tensor, x_true: torch.Tensor) -> None:
        """Add ``predictions [T − n, N]`` (row ``t`` predicts ``x_true[t + n]``) of ``x_true [T, N]`` (finite)."""
        _check_pair(predictions, x_true, ("predictions", "x_true"))
        self._add(prediction_error(predictions, x_true, self.n), predictions.shape[0])
