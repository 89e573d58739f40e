"""D_stsp, D_H and PE(n) against hand-computed values, their invariances, and bad inputs."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lrnn.timeseries.dsr.metrics import (
    LAPLACE_ALPHA,
    n_step_predictions,
    normalized_power_spectrum,
    power_spectrum_error,
    prediction_error,
    state_space_divergence,
    state_space_divergence_bins,
    state_space_divergence_gmm,
    state_space_self_distance,
)

LORENZ63 = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "dsr" / "lorenz63.npy"


def _sine(t_len: int, k: float, phase: float = 0.0, amplitude: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """A sine with k periods over t_len samples, as a [T, 1] series."""
    t = np.arange(t_len)
    return (offset + amplitude * np.sin(2 * np.pi * k * t / t_len + phase))[:, None]


# ---------------------------------------------------------------- D_stsp (bins)


def test_dstsp_identical_and_time_order_invariant():
    x = np.random.default_rng(0).standard_normal((2000, 3))
    assert state_space_divergence_bins(x, x) == pytest.approx(0.0, abs=1e-12)
    # The occupation measure ignores the order of the points.
    shuffled = x[np.random.default_rng(1).permutation(len(x))]
    assert state_space_divergence_bins(x, shuffled) == pytest.approx(0.0, abs=1e-12)


def test_dstsp_disjoint_histograms_closed_form():
    # 2-D, 10 bins per dimension: the true points sit at two corners, the generated ones at the other two.
    m = 50
    x_true = np.repeat([[0.0, 0.0], [1.0, 1.0]], m, axis=0)
    x_gen = np.repeat([[0.0, 1.0], [1.0, 0.0]], m, axis=0)
    a, n_total = LAPLACE_ALPHA, 10**2
    z = 2 * m + a * n_total
    # Two bins with p = (m+a)/z, q = a/z; two with p = a/z, q = (m+a)/z; 96 empty bins contribute 0.
    expected = 2 * (m + a) / z * math.log((m + a) / a) + 2 * a / z * math.log(a / (m + a))
    assert state_space_divergence_bins(x_true, x_gen, n_bins=10) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(2 * m / z * math.log((m + a) / a))


def test_dstsp_matches_a_dense_histogram():
    # Independent of the sparse bookkeeping: numpy's histogramdd over the same bins.
    rng = np.random.default_rng(2)
    x_true = rng.standard_normal((3000, 3))
    x_gen = 1.3 * rng.standard_normal((2000, 3)) + 0.2
    std = x_true.std(0, ddof=1)
    lo, hi = x_true.min(0) - 0.1 * std, x_true.max(0) + 0.1 * std
    edges = [np.linspace(lo[d], hi[d], 13) for d in range(3)]
    h_p = np.histogramdd(x_true, bins=edges)[0]
    h_q = np.histogramdd(x_gen[((x_gen >= lo) & (x_gen < hi)).all(1)], bins=edges)[0]
    p = (h_p + LAPLACE_ALPHA) / (h_p.sum() + LAPLACE_ALPHA * h_p.size)
    q = (h_q + LAPLACE_ALPHA) / (h_q.sum() + LAPLACE_ALPHA * h_q.size)
    assert state_space_divergence_bins(x_true, x_gen, n_bins=12) == pytest.approx((p * np.log(p / q)).sum(), rel=1e-10)


def test_dstsp_drops_outside_and_nonfinite_generated_points():
    rng = np.random.default_rng(3)
    x_true = rng.standard_normal((1000, 2))
    x_gen = rng.standard_normal((500, 2))
    outside = np.concatenate([x_gen, [[100.0, 0.0], [np.nan, 0.0], [np.inf, 1.0]]])
    assert state_space_divergence_bins(x_true, outside) == pytest.approx(state_space_divergence_bins(x_true, x_gen))
    assert math.isnan(state_space_divergence_bins(x_true, x_true + 100.0))  # nothing inside the box
    assert math.isnan(state_space_divergence_bins(x_true, np.full((10, 2), np.nan)))


def test_dstsp_legacy_box_is_two_sigma():
    # Under the legacy box [-2σ, 2σ] the points beyond 2σ are dropped, so they do not change the measure.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4000, 1))
    inner = x[np.abs(x[:, 0]) < 2 * x.std(ddof=1)]
    assert state_space_divergence_bins(x, inner, binning="legacy") == pytest.approx(0.0, abs=1e-12)
    assert state_space_divergence_bins(x, inner) > 1e-3


def test_dstsp_dispatches_on_dimension():
    rng = np.random.default_rng(5)
    low, high = rng.standard_normal((400, 3)), rng.standard_normal((400, 8))
    low_gen, high_gen = low + 0.5, high + 0.5
    assert state_space_divergence(low, low_gen, 10) == state_space_divergence_bins(low, low_gen, 10)
    assert state_space_divergence(high, high_gen, 10, scaling=0.3) == state_space_divergence_gmm(high, high_gen, 0.3)


# ---------------------------------------------------------------- D_stsp (GMM)


def test_gmm_identical_is_zero_and_single_gaussians_give_closed_form():
    x = np.random.default_rng(6).standard_normal((300, 4))
    assert state_space_divergence_gmm(x, x) == pytest.approx(0.0, abs=1e-12)
    # One component each: KL(N(0, σ²) ‖ N(μ, σ²)) = μ² / (2σ²); the Monte-Carlo estimate is unbiased.
    mu, sigma2 = 1.5, 0.5
    estimate = state_space_divergence_gmm(np.zeros((1, 1)), np.full((1, 1), mu), sigma2, mc_samples=200_000)
    assert estimate == pytest.approx(mu**2 / (2 * sigma2), abs=0.02)


def test_gmm_is_deterministic_from_its_seed_and_grows_with_the_mismatch():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((500, 12))
    near, far = x + 0.1 * rng.standard_normal(x.shape), x + 1.0
    assert state_space_divergence_gmm(x, near, seed=3) == state_space_divergence_gmm(x, near, seed=3)
    assert 0 < state_space_divergence_gmm(x, near) < state_space_divergence_gmm(x, far)
    assert math.isnan(state_space_divergence_gmm(x, np.full_like(x, np.nan)))


# ---------------------------------------------------------------- self-distance


def test_self_distance_uses_disjoint_first_and_last_segments():
    x = np.random.default_rng(8).standard_normal((1000, 2))
    assert state_space_self_distance(x, 300, n_bins=8) == state_space_divergence_bins(x[:300], x[-300:], 8)
    with pytest.raises(ValueError, match="two disjoint segments"):
        state_space_self_distance(x, 501)


@pytest.mark.skipif(not LORENZ63.exists(), reason=f"the AL-RNN data set is not at {LORENZ63}")
def test_lorenz63_self_distance_shrinks_with_sample_size():
    x = np.load(LORENZ63)
    floors = [state_space_self_distance(x, n) for n in (10_000, 25_000, 50_000)]
    assert floors[0] > floors[1] > floors[2] > 0
    assert floors[2] < 0.2  # 50k vs 50k, 30 bins: 0.084 measured
    # A wrong attractor is far above the floor: the same points with two coordinates swapped.
    assert state_space_divergence(x[:50_000], x[-50_000:, [1, 0, 2]]) > 20 * floors[2]
    assert power_spectrum_error(x[:50_000], x[-50_000:]) < 0.06  # 0.035 measured


# ---------------------------------------------------------------- D_H


def test_dh_zero_for_the_same_sine_and_invariant_to_phase_scale_and_offset():
    a = _sine(2048, 64)
    assert power_spectrum_error(a, a) == pytest.approx(0.0, abs=1e-7)
    b = _sine(2048, 64, phase=1.0, amplitude=7.0, offset=-3.0)
    assert power_spectrum_error(a, b) == pytest.approx(0.0, abs=1e-7)


def test_dh_between_two_sines_by_hand():
    # An integer-period sine has all its (z-scored) power in one rfft bin, so the smoothed, normalised spectrum
    # is the normalised Gaussian kernel g_j ∝ exp(-j²/2σ²), |j| ≤ 4σ, centred on that bin. Between sines k and
    # k + Δ (far from the edges): H² = 1 - Σ_j sqrt(g_j g_{j-Δ}).
    sigma, delta = 3.0, 5
    j = np.arange(-12, 13)
    g = np.exp(-(j**2) / (2 * sigma**2))
    g /= g.sum()
    bhattacharyya = sum(math.sqrt(g[i] * g[i - delta]) for i in range(delta, len(j)))
    expected = math.sqrt(1 - bhattacharyya)
    value = power_spectrum_error(_sine(1024, 100), _sine(1024, 100 + delta), smoothing=sigma)
    assert value == pytest.approx(expected, abs=1e-6)
    # Close to the untruncated Gaussian value sqrt(1 - exp(-Δ²/8σ²)).
    assert value == pytest.approx(math.sqrt(1 - math.exp(-(delta**2) / (8 * sigma**2))), abs=1e-2)


def test_dh_is_one_for_disjoint_spectra_and_bounded():
    assert power_spectrum_error(_sine(1024, 50), _sine(1024, 150), smoothing=3.0) == pytest.approx(1.0, abs=1e-6)
    assert power_spectrum_error(_sine(1024, 50), _sine(1024, 51), smoothing=0.0) == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(9)
    for _ in range(5):
        x, y = rng.standard_normal((2, 500, 3)).cumsum(1)
        per_dim = power_spectrum_error(x, y, smoothing=5.0, reduce=False)
        assert per_dim.shape == (3,) and ((per_dim >= 0) & (per_dim <= 1)).all()


def test_dh_averages_over_dimensions_and_the_spectrum_is_normalised():
    x = np.concatenate([_sine(1024, 100), _sine(1024, 200)], axis=1)
    y = np.concatenate([_sine(1024, 100), _sine(1024, 300)], axis=1)
    per_dim = power_spectrum_error(x, y, smoothing=3.0, reduce=False)
    assert per_dim == pytest.approx([0.0, 1.0], abs=1e-6)
    assert power_spectrum_error(x, y, smoothing=3.0) == pytest.approx(0.5, abs=1e-6)
    spectrum = normalized_power_spectrum(np.random.default_rng(10).standard_normal((501, 2)))
    assert spectrum.shape == (251, 2) and np.allclose(spectrum.sum(0), 1.0) and (spectrum >= 0).all()


def test_dh_is_nan_for_a_diverged_or_collapsed_model():
    x = _sine(512, 20)
    assert math.isnan(power_spectrum_error(x, np.full_like(x, np.nan)))
    assert math.isnan(power_spectrum_error(x, np.ones_like(x)))


def test_measures_accept_torch_tensors():
    x = np.random.default_rng(11).standard_normal((400, 2))
    y = x[::-1].copy() + 0.3
    assert power_spectrum_error(torch.from_numpy(x), torch.from_numpy(y)) == power_spectrum_error(x, y)
    assert state_space_divergence(torch.from_numpy(x).float(), y) == pytest.approx(
        state_space_divergence(x.astype(np.float32), y)
    )


# ---------------------------------------------------------------- PE(n)


def test_prediction_error_of_a_linear_map_by_hand():
    a, b, n = 0.9, 0.8, 3
    x = (a ** np.arange(50))[:, None] * np.array([[1.0, -2.0]])
    assert prediction_error(lambda z: a * z, x, n) == pytest.approx(0.0, abs=1e-12)
    # From x_t the wrong map predicts b^n x_t; the truth is a^n x_t.
    expected = np.mean(((b**n - a**n) * x[:-n]) ** 2)
    assert prediction_error(lambda z: b * z, x, n) == pytest.approx(expected, rel=1e-5)
    predictions = b**n * x[:-n]
    assert prediction_error(predictions, x, n) == pytest.approx(expected, rel=1e-12)


def test_prediction_error_with_a_latent_state():
    # Latent z = [x; 2x] (init), the map acts on every unit, the readouts are the first N units (default).
    x = torch.randn(40, 2, dtype=torch.float64)
    error = prediction_error(lambda z: z, x, 5, init=lambda v: torch.cat([v, 2 * v], dim=1))
    assert error == pytest.approx(torch.mean((x[:-5] - x[5:]) ** 2).item())
    observed = prediction_error(lambda z: z, x, 5, init=lambda v: torch.cat([v, 2 * v], 1), observe=lambda z: z[:, 2:])
    assert observed == pytest.approx(torch.mean((2 * x[:-5] - x[5:]) ** 2).item())
    assert math.isnan(prediction_error(lambda z: z * 1e308 * 1e308, x, 2))


def test_n_step_predictions_iterate_every_start_n_times():
    x = torch.arange(12, dtype=torch.float64).view(6, 2)
    predictions = n_step_predictions(lambda z: z + 1, x, 2, init=lambda v: torch.cat([v, -v], 1))
    assert torch.equal(predictions, x[:-2] + 2)
    assert torch.equal(n_step_predictions(lambda z: 2 * z, x, 1, observe=lambda z: z[:, 1:]), 2 * x[:-1, 1:])
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, T\) with T = 6, got 6"):
        n_step_predictions(lambda z: z, x, 6)
    with pytest.raises(ValueError, match=r"x_true must be a \[T, N\] torch.Tensor"):
        n_step_predictions(lambda z: z, x.numpy(), 1)


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: state_space_divergence_bins(np.where(x > 2, np.nan, x), x), "x_true contains NaN"),
        (lambda x: power_spectrum_error(np.where(x > 2, np.inf, x), x), "x_true contains NaN"),
        (lambda x: prediction_error(lambda z: z, np.where(x > 2, np.nan, x), 2), "x_true contains NaN"),
        (lambda x: state_space_divergence_bins(x[:1], x), "at least 2 true"),
        (lambda x: state_space_divergence_bins(x[:, 0], x), r"\[T, N\]"),
        (lambda x: state_space_divergence_bins(x, x[:, :2]), "same number of dimensions"),
        (lambda x: state_space_divergence_bins(x, x, n_bins=0), "n_bins"),
        (lambda x: state_space_divergence_bins(x, x, binning="wide"), "binning"),
        (lambda x: state_space_divergence_bins(np.ones_like(x), x), "constant"),
        (lambda x: state_space_divergence_gmm(x, x[:10]), "at least min"),
        (lambda x: state_space_divergence_gmm(x, x, scaling=0.0), "scaling"),
        (lambda x: power_spectrum_error(x[:100], x[:100]), "too short for D_H"),
        (lambda x: power_spectrum_error(x, x[:-1]), "same shape"),
        (lambda x: power_spectrum_error(np.ones_like(x), x, smoothing=1.0), "constant"),
        (lambda x: prediction_error(lambda z: z, x[:5], 5), "more than n = 5"),
        (lambda x: prediction_error(lambda z: z, x, 0), "positive integer"),
        (lambda x: prediction_error(x, x, 3), r"shape \(297, 3\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    x = np.random.default_rng(12).standard_normal((300, 3))
    with pytest.raises(ValueError, match=match):
        call(x)
