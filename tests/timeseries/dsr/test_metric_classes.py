"""The torchmetrics classes give the plain functions' values: one update equals the function, several pool."""

import math

import numpy as np
import pytest
import torch
from lrnn.timeseries.dsr.metric_classes import PowerSpectrumError, PredictionError, StateSpaceDivergence
from lrnn.timeseries.dsr.metrics import (
    LAPLACE_ALPHA,
    power_spectrum_error,
    prediction_error,
    state_space_divergence,
)


def _sine(t_len: int, k: float) -> torch.Tensor:
    """A sine with k periods over t_len samples, ``[T, 1]`` float64."""
    return torch.sin(2 * math.pi * k * torch.arange(t_len, dtype=torch.float64) / t_len)[:, None]


def test_state_space_divergence_on_disjoint_corners_equals_the_closed_form():
    # 2-d, 10 bins: the true points at two corners, the generated ones at the other two (see test_metrics).
    m, a = 50, LAPLACE_ALPHA
    x_true = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64).repeat_interleave(m, 0)
    x_gen = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64).repeat_interleave(m, 0)
    metric = StateSpaceDivergence(n_bins=10)
    metric.update(x_true, x_gen)
    z = 2 * m + a * 100
    expected = 2 * (m + a) / z * math.log((m + a) / a) + 2 * a / z * math.log(a / (m + a))
    assert metric.compute().item() == pytest.approx(expected, rel=1e-12)
    assert metric.compute().item() == state_space_divergence(x_true, x_gen, 10)


def test_state_space_divergence_pools_the_points_of_all_updates():
    g = torch.Generator().manual_seed(0)
    parts = [(torch.randn(300, 3, generator=g), 1.2 * torch.randn(200 + 50 * k, 3, generator=g)) for k in range(3)]
    metric = StateSpaceDivergence(n_bins=12)
    for x_true, x_gen in parts:
        metric.update(x_true, x_gen)
    pooled = state_space_divergence(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), 12)
    assert metric.compute().item() == pooled
    metric.reset()
    metric.update(*parts[0])
    assert metric.compute().item() == state_space_divergence(*parts[0], 12)


def test_state_space_divergence_switches_to_the_gaussian_mixture_in_high_dimensions():
    g = torch.Generator().manual_seed(1)
    x_true, x_gen = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 0.5
    metric = StateSpaceDivergence(scaling=0.3)
    metric.update(x_true, x_gen)
    assert metric.compute().item() == state_space_divergence(x_true, x_gen, scaling=0.3)


def test_power_spectrum_error_equals_the_function_and_averages_pairs():
    x, same, shifted = _sine(1024, 100), _sine(1024, 100), _sine(1024, 105)
    metric = PowerSpectrumError(smoothing=3.0)
    metric.update(x, shifted)
    one = power_spectrum_error(x, shifted, 3.0)
    assert 0.1 < one < 1 and metric.compute().item() == one
    metric.update(x, same)  # D_H = 0
    assert metric.compute().item() == pytest.approx(one / 2, abs=1e-12)
    metric.update(x, torch.full_like(x, float("nan")))  # a diverged orbit
    assert math.isnan(metric.compute().item())


def test_prediction_error_equals_the_function_and_weights_by_predictions():
    # x_t = a^t (1, -2); the wrong map predicts b^n x_t for x_{t+n} = a^n x_t.
    a, b, n = 0.9, 0.8, 3
    x = (a ** torch.arange(50, dtype=torch.float64))[:, None] * torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    predictions = b**n * x[:-n]
    metric = PredictionError(n)
    metric.update(predictions, x)
    expected = torch.mean(((b**n - a**n) * x[:-n]) ** 2).item()
    assert metric.compute().item() == pytest.approx(expected, rel=1e-12)
    assert metric.compute().item() == prediction_error(predictions, x, n)
    # A second, shorter pair with exact predictions (PE 0): the mean over all 47 + 7 predicted points.
    metric.update(a**n * x[:7], x[:10])
    assert metric.compute().item() == pytest.approx(expected * 47 / 54, rel=1e-12)


@pytest.mark.parametrize(
    ("metric", "args", "match"),
    [
        (StateSpaceDivergence(), (torch.zeros(10), torch.zeros(10, 1)), r"x_true must be a \[T, N\]"),
        (StateSpaceDivergence(), (torch.zeros(10, 2), torch.zeros(10, 3)), "same N"),
        (StateSpaceDivergence(), (torch.tensor([[0.0], [np.nan]]), torch.zeros(2, 1)), "x_true contains NaN"),
        (PowerSpectrumError(), (torch.zeros(300, 2), np.zeros((300, 2))), r"x_gen must be a \[T, N\]"),
        (PowerSpectrumError(), (torch.randn(100, 2), torch.randn(100, 2)), "too short for D_H"),
        (PredictionError(5), (torch.zeros(20, 2), torch.zeros(20, 2)), r"predictions must have shape \(15, 2\)"),
    ],
)
def test_bad_updates_raise_clear_errors(metric, args, match):
    with pytest.raises(ValueError, match=match):
        metric.update(*args)
