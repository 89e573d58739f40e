"""Dynamical-systems-reconstruction measures: D_stsp, D_H and PE(n), as the DurstewitzLab code defines them.

Sources (read, re-written here): ``src/measures/{stsp_measure.jl, pse.jl, prediction_error.jl}`` and
``src/evaluation.jl`` of DurstewitzLab/GTF-shPLRNN (Hess et al., ICML 2023; the same files ship with
DurstewitzLab/ALRNN-DSR, Brenner et al., NeurIPS 2024), and ``alrnn_python/metrics.py`` of ALRNN-DSR.

All measures take time series as ``[T, N]`` arrays (numpy or torch; time first) and compute in float64.
The ground truth ``x_true`` must be finite (else ``ValueError``). A generated series that diverged is a
legitimate outcome of a bad model, not a bad input: non-finite generated points fall outside every bin of
D_stsp (as in the authors' histogram), and D_H and PE return NaN for them, which is what the authors'
evaluation records for a diverged run.

Evaluation protocol of the papers (``evaluate_run``): generate ``1.25 T`` steps from the first test point,
drop the first ``0.25 T`` and compare the remaining ``T`` with the test series; D_stsp depends strongly on T,
so compare against :func:`state_space_self_distance` at the same T and number of bins.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.special import logsumexp

LAPLACE_ALPHA = 1e-5
"""Pseudo-count added to every bin before normalising (``laplace_smoothing``, α = 1f-5 in the Julia code)."""


def _as_series(x, name: str, *, finite: bool) -> np.ndarray:
    """``x`` as a float64 ``[T, N]`` array; checks the rank and, for ground truth, finiteness."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a [T, N] time series, got shape {tuple(x.shape)}")
    if finite and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf ({int((~np.isfinite(x)).sum())} entries)")
    return x


def _check_pair(x_true: np.ndarray, x_gen: np.ndarray) -> None:
    if x_true.shape[1] != x_gen.shape[1]:
        raise ValueError(
            f"x_true and x_gen must have the same number of dimensions, got {x_true.shape} and {x_gen.shape}"
        )


def state_space_divergence_bins(x_true, x_gen, n_bins: int = 30, *, binning: str = "default") -> float:
    """D_stsp by binning: ``KL(p_true ‖ p_gen)`` between Laplace-smoothed occupation histograms.

    Definition (``state_space_divergence(X, X̃, n_bins)`` in ``stsp_measure.jl``):

    * bins: ``n_bins`` equal bins per dimension over ``[min − 0.1σ, max + 0.1σ]`` of ``x_true`` (σ the
      sample standard deviation, ddof = 1); ``binning="legacy"`` uses ``[−2σ, 2σ]`` instead (Brenner et al.
      2022). Bins are closed on the left; points outside the box are dropped (StatsBase ``fit(Histogram)``);
    * smoothing: ``p_k = (h_k + α) / (Σh + α K)`` with α = 1e-5 and ``K = n_bins^N`` bins, for both series;
    * result: ``Σ_k p_k log(p_k / q_k)`` (natural log); NaN if no generated point falls inside the box.

    The sum runs over the occupied bins plus, in closed form, the ``K − #occupied`` bins that are empty in
    both histograms (each contributes ``p₀ log(p₀/q₀)`` with ``p₀ = α/(Σh + αK)``), so memory stays
    O(T) even for ``30^N`` bins. The Julia code counts in UInt16 and sums in float32; this sums in float64.

    Args:
        x_true: ground truth ``[T, N]``, finite, at least 2 points.
        x_gen: generated ``[T', N]`` (any T' ≥ 1).
        n_bins: bins per dimension (30 for Lorenz-63/Rössler; 8 for the AL-RNN ECG and fMRI runs).
        binning: ``"default"`` or ``"legacy"``.
    Returns:
        D_stsp in nats (0 for identical histograms).
    """
    x_true = _as_series(x_true, "x_true", finite=True)
    x_gen = _as_series(x_gen, "x_gen", finite=False)
    _check_pair(x_true, x_gen)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if x_true.shape[0] < 2 or x_gen.shape[0] < 1:
        raise ValueError(f"need at least 2 true and 1 generated point, got {x_true.shape[0]} and {x_gen.shape[0]}")
    sigma = x_true.std(axis=0, ddof=1)
    if binning == "default":
        lo, hi = x_true.min(axis=0) - 0.1 * sigma, x_true.max(axis=0) + 0.1 * sigma
    elif binning == "legacy":
        lo, hi = -2.0 * sigma, 2.0 * sigma
    else:
        raise ValueError(f"binning must be 'default' or 'legacy', got {binning!r}")
    if not (hi > lo).all():
        raise ValueError("x_true is constant along some dimension; its bin range is empty")

    def occupied(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the occupied bins and their counts."""
        index = np.zeros(x.shape[0], dtype=np.int64)
        inside = np.ones(x.shape[0], dtype=bool)
        for d in range(x.shape[1]):
            edges = np.linspace(lo[d], hi[d], n_bins + 1)
            i = np.searchsorted(edges, x[:, d], side="right") - 1
            inside &= (i >= 0) & (i < n_bins)
            index = index * n_bins + np.clip(i, 0, n_bins - 1)
        return np.unique(index[inside], return_counts=True)

    bins_p, counts_p = occupied(x_true)
    bins_q, counts_q = occupied(x_gen)
    if counts_q.size == 0:
        return float("nan")
    n_total = float(n_bins) ** x_true.shape[1]
    norm_p = counts_p.sum() + LAPLACE_ALPHA * n_total
    norm_q = counts_q.sum() + LAPLACE_ALPHA * n_total
    union = np.union1d(bins_p, bins_q)
    h_p = np.zeros(union.size)
    h_q = np.zeros(union.size)
    h_p[np.searchsorted(union, bins_p)] = counts_p
    h_q[np.searchsorted(union, bins_q)] = counts_q
    p = (h_p + LAPLACE_ALPHA) / norm_p
    q = (h_q + LAPLACE_ALPHA) / norm_q
    p0, q0 = LAPLACE_ALPHA / norm_p, LAPLACE_ALPHA / norm_q
    return float(np.sum(p * np.log(p / q)) + (n_total - union.size) * p0 * np.log(p0 / q0))


def state_space_divergence_gmm(
    x_true,
    x_gen,
    scaling: float = 1.0,
    *,
    max_t: int = 10_000,
    mc_samples: int = 1000,
    seed: int | np.random.Generator | None = 0,
) -> float:
    """D_stsp for high-dimensional data: Monte-Carlo KL between Gaussian mixtures on the trajectory points.

    Definition (``state_space_divergence(X, X̃, σ²)`` in ``stsp_measure.jl``; Hershey & Olsen 2007):

    * ``p`` and ``q`` put one isotropic Gaussian ``N(x_t, σ² I)`` on each of the first ``T̃ = min(T, max_t)``
      points of ``x_true`` and ``x_gen`` (σ² = ``scaling``: 1.0 in GTF, 0.3 in the AL-RNN defaults);
    * ``mc_samples`` samples ``s_i = x_true[t_i] + σ ε_i`` with ``t_i`` uniform on the first T̃ points;
    * result: ``mean_i [log p(s_i) − log q(s_i)]``.

    The Julia code evaluates the densities in float32 and drops samples where either density underflows
    to 0; here the log-densities come from ``logsumexp`` in float64, so no sample is dropped and the two
    agree whenever nothing underflows. Samples where ``log q`` is not finite (a diverged ``x_gen``) make
    the result NaN.

    Args:
        x_true: ground truth ``[T, N]``, finite.
        x_gen: generated ``[T', N]`` with ``T' ≥ min(T, max_t)``.
        scaling: the mixture components' variance σ² (> 0).
        seed: seed or generator for the Monte-Carlo samples (the result is random; fixed seed by default).
    """
    x_true = _as_series(x_true, "x_true", finite=True)
    x_gen = _as_series(x_gen, "x_gen", finite=False)
    _check_pair(x_true, x_gen)
    if not scaling > 0:
        raise ValueError(f"scaling (σ²) must be positive, got {scaling!r}")
    t_used = min(x_true.shape[0], max_t)
    if t_used < 1 or x_gen.shape[0] < t_used:
        raise ValueError(f"x_gen needs at least min(T, max_t) = {t_used} points, got {x_gen.shape[0]}")
    rng = np.random.default_rng(seed)
    x_p, x_q = x_true[:t_used], x_gen[:t_used]
    sigma = float(np.sqrt(scaling))
    samples = x_p[rng.integers(0, t_used, mc_samples)] + sigma * rng.standard_normal((mc_samples, x_p.shape[1]))

    def log_density(centres: np.ndarray) -> np.ndarray:
        # The normalising constant (2πσ²)^{-N/2} cancels in log p − log q.
        sq = (samples**2).sum(1)[:, None] - 2.0 * samples @ centres.T + (centres**2).sum(1)[None, :]
        return logsumexp(-0.5 * np.maximum(sq, 0.0) / scaling, axis=1) - np.log(t_used)

    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.mean(log_density(x_p) - log_density(x_q)))


def state_space_divergence(
    x_true, x_gen, n_bins: int = 30, *, scaling: float = 1.0, max_bin_dims: int = 5, **kwargs
) -> float:
    """D_stsp: binned KL (:func:`state_space_divergence_bins`) for ``N ≤ max_bin_dims`` dimensions, else GMM.

    The switch follows ``decide_on_measure`` of GTF-shPLRNN (``N < 6``: bins). ``kwargs`` go to the chosen
    estimator (``binning`` for bins; ``max_t``, ``mc_samples``, ``seed`` for the GMM).
    """
    n_dims = _as_series(x_true, "x_true", finite=False).shape[1]
    if n_dims <= max_bin_dims:
        return state_space_divergence_bins(x_true, x_gen, n_bins, **kwargs)
    return state_space_divergence_gmm(x_true, x_gen, scaling, **kwargs)


def state_space_self_distance(x_true, n_samples: int, n_bins: int = 30, **kwargs) -> float:
    """Ground-truth floor of D_stsp at sample size ``n_samples``: the first against the last ``n_samples`` points.

    D_stsp between two finite samples of the same attractor is not 0 and shrinks with the sample size
    (``lorenz63.npy``, 30 bins: 0.36 at 10k points, 0.20 at 25k, 0.084 at 50k), so a model's D_stsp on T points is only
    meaningful next to this value at the same T, bins and range. The two segments are as far apart in time
    as the series allows (disjoint, requires ``2 n_samples ≤ T``). ``kwargs`` go to :func:`state_space_divergence`.
    """
    x_true = _as_series(x_true, "x_true", finite=True)
    if n_samples < 2 or 2 * n_samples > x_true.shape[0]:
        raise ValueError(
            f"n_samples must be in [2, T/2] for two disjoint segments, got {n_samples} with T = {x_true.shape[0]}"
        )
    return state_space_divergence(x_true[:n_samples], x_true[-n_samples:], n_bins, **kwargs)


def normalized_power_spectrum(x, smoothing: float = 20.0) -> np.ndarray:
    """Smoothed, normalised power spectrum per dimension, ``[T // 2 + 1, N]``, each column summing to 1.

    Definition (``normalized_and_smoothed_power_spectrum`` in ``pse.jl``; ``compute_and_smooth_power_spectrum``
    in ``alrnn_python``): z-score each dimension, ``PS = |rfft(x)|²`` over all ``T // 2 + 1`` frequencies (no
    cut-off), Gaussian smoothing with standard deviation ``smoothing`` frequency bins (kernel radius ``4σ``;
    padding as ``pse.jl``'s ImageFiltering ``"reflect"``, which leaves out the edge bin, i.e. scipy ``"mirror"``;
    ``alrnn_python`` uses scipy's default ``"reflect"``, which repeats it: D_H differs by ~1e-6), clip
    negative round-off to 0, divide by the sum. ``smoothing=0`` skips the smoothing. A constant column has
    no spectrum and gives NaN.
    """
    x = _as_series(x, "x", finite=False)
    std = x.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        power = np.abs(np.fft.rfft((x - x.mean(axis=0)) / std, axis=0)) ** 2
        if smoothing > 0:
            power = np.maximum(gaussian_filter1d(power, smoothing, axis=0, mode="mirror", truncate=4.0), 0.0)
        return power / power.sum(axis=0)


def power_spectrum_error(x_true, x_gen, smoothing: float = 20.0, *, reduce: bool = True):
    """D_H: Hellinger distance between the smoothed, normalised power spectra, averaged over dimensions.

    Definition (``power_spectrum_error`` and ``hellinger_distance`` in ``pse.jl``): per dimension
    ``H = (1/√2) ‖√p − √q‖₂ = sqrt(1 − Σ_k √(p_k q_k))`` with ``p, q`` from :func:`normalized_power_spectrum`;
    D_H is the mean of H over dimensions. H lies in [0, 1]: 0 for equal spectra, 1 for disjoint support.
    σ = 20 bins in all the papers' low-dimensional runs (``PSE_smoothing``); the AL-RNN fMRI run uses 1.

    Args:
        x_true: ground truth ``[T, N]``, finite, not constant along any dimension.
        x_gen: generated ``[T, N]``: the same length, so both spectra share one frequency grid (the Julia
            code asserts equal sizes).
        smoothing: σ of the Gaussian smoothing in frequency bins.
        reduce: return the mean (default) or the ``[N]`` per-dimension distances.
    Returns:
        D_H, or NaN where ``x_gen`` is non-finite or constant (a diverged or collapsed model).
    """
    x_true = _as_series(x_true, "x_true", finite=True)
    x_gen = _as_series(x_gen, "x_gen", finite=False)
    if x_true.shape != x_gen.shape:
        raise ValueError(f"x_true and x_gen must have the same shape [T, N], got {x_true.shape} and {x_gen.shape}")
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing!r}")
    n_freq = x_true.shape[0] // 2 + 1
    if x_true.shape[0] < 4 or n_freq <= 4 * smoothing:
        raise ValueError(
            f"series too short for D_H: T = {x_true.shape[0]} gives {n_freq} frequencies, need more than "
            f"4 * smoothing = {4 * smoothing} (and T >= 4)"
        )
    if (x_true.std(axis=0) == 0).any():
        raise ValueError("x_true is constant along some dimension; its power spectrum is undefined")
    p = normalized_power_spectrum(x_true, smoothing)
    with np.errstate(invalid="ignore"):
        q = normalized_power_spectrum(x_gen, smoothing) if np.isfinite(x_gen).all() else np.full_like(p, np.nan)
        distance = np.minimum(np.sqrt(((np.sqrt(p) - np.sqrt(q)) ** 2).sum(axis=0) / 2.0), 1.0)
    return float(distance.mean()) if reduce else distance


def n_step_predictions(
    step: Callable[[torch.Tensor], torch.Tensor],
    x_true: torch.Tensor,
    n: int = 20,
    *,
    init: Callable[[torch.Tensor], torch.Tensor] | None = None,
    observe: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Predictions ``[T − n, N]`` of ``x_true[n:]``: row ``t`` is ``observe(step^n(init(x_true[t])))``.

    All ``T − n`` starts are iterated as one batch under ``torch.no_grad()``.

    Args:
        step: the model's one-step map ``z [B, M] -> [B, M]``.
        x_true: observations ``[T, N]`` (torch, passed to ``init`` as they are), ``T > n``.
        n: horizon in steps (≥ 1).
        init: observation → latent state (e.g. ``z = [x; L x]``); identity by default.
        observe: latent state → observation; by default the first N units (identity observation model).
    """
    if not isinstance(x_true, torch.Tensor) or x_true.dim() != 2:
        raise ValueError(f"x_true must be a [T, N] torch.Tensor, got {getattr(x_true, 'shape', type(x_true).__name__)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n < x_true.shape[0]:
        raise ValueError(f"n must be an integer in [1, T) with T = {x_true.shape[0]}, got {n!r}")
    with torch.no_grad():
        z = x_true[:-n] if init is None else init(x_true[:-n])
        for _ in range(n):
            z = step(z)
        return z[:, : x_true.shape[1]] if observe is None else observe(z)


def prediction_error(
    predictor: Callable[[torch.Tensor], torch.Tensor] | np.ndarray | torch.Tensor,
    x_true,
    n: int = 20,
    *,
    init: Callable[[torch.Tensor], torch.Tensor] | None = None,
    observe: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """PE(n): mean squared error of n-step-ahead predictions started from every true state.

    Definition (``prediction_error`` in ``prediction_error.jl``)::

        z = init(x_true[0 : T−n])            # one initial state per time point, batched
        repeat n times: z = step(z)
        PE(n) = mean over t, dims of (observe(z)[t] − x_true[t + n])²

    ``n = 20`` in all the papers' settings (``PE_n``).

    Args:
        predictor: either the model's one-step map ``step(z [B, M]) -> [B, M]`` (torch), iterated by
            :func:`n_step_predictions`, or precomputed predictions ``[T − n, N]`` whose row ``t`` predicts
            ``x_true[t + n]``.
        x_true: ground truth ``[T, N]``, finite, ``T > n``. A torch tensor is passed to the model as it is
            (device, dtype); a numpy array becomes a tensor of torch's default dtype.
        n: prediction horizon in steps (≥ 1).
        init, observe: as in :func:`n_step_predictions` (used only with a callable ``predictor``).
    Returns:
        PE(n); NaN if the predictions are not finite.
    """
    x_np = _as_series(x_true, "x_true", finite=True)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    t_total, n_dims = x_np.shape
    if t_total <= n:
        raise ValueError(f"x_true needs more than n = {n} points, got {t_total}")
    if callable(predictor):
        x = x_true if isinstance(x_true, torch.Tensor) else torch.as_tensor(x_np, dtype=torch.get_default_dtype())
        predicted = n_step_predictions(predictor, x, n, init=init, observe=observe)
    else:
        predicted = predictor
    predicted = _as_series(predicted, "predictions", finite=False)
    if predicted.shape != (t_total - n, n_dims):
        raise ValueError(f"predictions must have shape {(t_total - n, n_dims)} ([T − n, N]), got {predicted.shape}")
    if not np.isfinite(predicted).all():
        return float("nan")
    return float(np.mean((predicted - x_np[n:]) ** 2))
