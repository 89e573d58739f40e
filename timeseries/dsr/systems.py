"""Benchmark chaotic systems for dynamical-systems reconstruction: Lorenz-63, Rössler, Lorenz-96.

Each generator integrates the equations with ``scipy.integrate.solve_ivp`` (LSODA, rtol = atol = 1e-10),
samples every ``dt`` time units, drops ``transient`` samples, standardises each dimension (mean 0, std 1,
as the papers' data sets are) and returns float32 ``[T, N]``. The initial condition is drawn from ``seed``,
so equal arguments give equal arrays.

Sampling steps: Lorenz-63 ``dt = 0.01`` (the step of the AL-RNN/GTF ``lorenz63.npy``; a test checks our
series against that file); Rössler ``dt = 0.05`` and Lorenz-96 ``dt = 0.01`` are our choices (the authors'
``rossler.npy`` and ``lorenz96.npy`` were not available to check).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.integrate import solve_ivp


def _sample(
    rhs: Callable[[float, np.ndarray], np.ndarray],
    x0: np.ndarray,
    n_steps: int,
    dt: float,
    transient: int,
    standardize: bool,
) -> np.ndarray:
    """Integrate ``dx/dt = rhs(t, x)`` from ``x0``; keep ``n_steps`` samples every ``dt`` after ``transient``."""
    if n_steps < 2 or transient < 0 or not dt > 0:
        raise ValueError(f"need n_steps >= 2, transient >= 0, dt > 0; got {n_steps}, {transient}, {dt}")
    t_eval = dt * np.arange(transient + n_steps)
    solution = solve_ivp(rhs, (0.0, t_eval[-1]), x0, method="LSODA", t_eval=t_eval, rtol=1e-10, atol=1e-10)
    if not solution.success:
        raise RuntimeError(f"integration failed: {solution.message}")
    x = solution.y.T[transient:]
    if standardize:
        x = (x - x.mean(axis=0)) / x.std(axis=0)
    return x.astype(np.float32)


def lorenz63(
    n_steps: int = 100_000,
    *,
    dt: float = 0.01,
    transient: int = 1000,
    seed: int = 0,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
    standardize: bool = True,
) -> np.ndarray:
    """Lorenz-63, ``[n_steps, 3]`` float32.

    ``ẋ = σ(y − x)``, ``ẏ = x(ρ − z) − y``, ``ż = xy − βz`` with σ = 10, ρ = 28, β = 8/3; sampled every
    ``dt = 0.01`` after ``transient`` samples (10 time units by default). The initial state is
    ``(0, 0, 25) + 5 ε`` with ``ε ~ N(0, I)`` from ``seed``.
    """

    def rhs(_, s):
        x, y, z = s
        return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]

    x0 = np.array([0.0, 0.0, 25.0]) + 5.0 * np.random.default_rng(seed).standard_normal(3)
    return _sample(rhs, x0, n_steps, dt, transient, standardize)


def rossler(
    n_steps: int = 100_000,
    *,
    dt: float = 0.05,
    transient: int = 2000,
    seed: int = 0,
    a: float = 0.2,
    b: float = 0.2,
    c: float = 5.7,
    standardize: bool = True,
) -> np.ndarray:
    """Rössler, ``[n_steps, 3]`` float32.

    ``ẋ = −y − z``, ``ẏ = x + a y``, ``ż = b + z (x − c)`` with a = 0.2, b = 0.2, c = 5.7; sampled every
    ``dt = 0.05`` (about 120 samples per rotation) after ``transient`` samples (100 time units). The initial
    state is ``(1, 1, 0) + ε`` with ``ε ~ N(0, I)`` from ``seed``.
    """

    def rhs(_, s):
        x, y, z = s
        return [-y - z, x + a * y, b + z * (x - c)]

    x0 = np.array([1.0, 1.0, 0.0]) + np.random.default_rng(seed).standard_normal(3)
    return _sample(rhs, x0, n_steps, dt, transient, standardize)


def lorenz96(
    n_steps: int = 100_000,
    n_dims: int = 20,
    *,
    dt: float = 0.01,
    transient: int = 2000,
    seed: int = 0,
    forcing: float = 8.0,
    standardize: bool = True,
) -> np.ndarray:
    """Lorenz-96, ``[n_steps, n_dims]`` float32.

    ``ẋ_i = (x_{i+1} − x_{i−2}) x_{i−1} − x_i + F`` with cyclic indices and F = 8 (chaotic for
    ``n_dims ≥ 4``); sampled every ``dt = 0.01`` after ``transient`` samples (20 time units). The initial
    state is ``F + 0.01 ε`` with ``ε ~ N(0, I)`` from ``seed``.
    """
    if n_dims < 4:
        raise ValueError(f"Lorenz-96 needs n_dims >= 4, got {n_dims}")

    def rhs(_, x):
        return (np.roll(x, -1) - np.roll(x, 2)) * np.roll(x, 1) - x + forcing

    x0 = forcing + 0.01 * np.random.default_rng(seed).standard_normal(n_dims)
    return _sample(rhs, x0, n_steps, dt, transient, standardize)
