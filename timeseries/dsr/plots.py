"""PNG figures of a reconstruction: true vs generated attractor and power spectra, and the symbolic code.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so drawing them never changes the backend of
the caller's session.
"""

from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .metrics import normalized_power_spectrum
from .subregions import SymbolicCode

SPECTRUM_DIMS = 3
"""Dimensions whose spectra are drawn (the first ones)."""


def _numpy(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    x = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a [T, N] series, got shape {x.shape}")
    return x


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(path)
    return path


def _add_state_space_axes(fig: Figure, position, n_dims: int):
    """3-d axes for ``n_dims >= 3`` (the first three dimensions), else 2-d axes, at a subplot ``position``."""
    return fig.add_subplot(position, projection="3d" if n_dims >= 3 else None)


def _draw_orbit(ax, x: np.ndarray, **style) -> None:
    """The orbit ``x [T, N]`` as a line: first 3 dimensions, first 2, or ``x_1`` over time for ``N = 1``."""
    if x.shape[1] >= 3:
        ax.plot(x[:, 0], x[:, 1], x[:, 2], **style)
    elif x.shape[1] == 2:
        ax.plot(x[:, 0], x[:, 1], **style)
    else:
        ax.plot(x[:, 0], **style)


def plot_reconstruction(
    x_true: torch.Tensor | np.ndarray,
    x_gen: torch.Tensor | np.ndarray,
    path: str | Path,
    smoothing: float = 20.0,
    title: str = "",
) -> Path:
    """Save a PNG comparing a generated orbit with the data: attractors side by side, then power spectra.

    Top row: ``x_true [T, N]`` and ``x_gen [T', N]`` in state space (first 3 dimensions in 3-d, or 2-d, or the
    series over time for N = 1) on common axis limits. Bottom row: for each of the first three dimensions, the
    smoothed, normalised power spectra that D_H compares (``normalized_power_spectrum``, σ = ``smoothing`` bins)
    against frequency in cycles per step, log scale. Returns the path.
    """
    x_true, x_gen = _numpy(x_true, "x_true"), _numpy(x_gen, "x_gen")
    if x_true.shape[1] != x_gen.shape[1]:
        raise ValueError(f"x_true and x_gen must have the same N, got {x_true.shape} and {x_gen.shape}")
    n_dims, n_spectra = x_true.shape[1], min(x_true.shape[1], SPECTRUM_DIMS)
    fig = Figure(figsize=(4 * max(n_spectra, 2), 8), layout="constrained")
    grid = fig.add_gridspec(2, 2 * n_spectra)
    both = np.concatenate([x_true, x_gen])
    low, high = both.min(axis=0), both.max(axis=0)
    for column, (x, label, color) in enumerate(((x_true, "data", "C0"), (x_gen, "generated", "C1"))):
        ax = _add_state_space_axes(fig, grid[0, column * n_spectra : (column + 1) * n_spectra], n_dims)
        _draw_orbit(ax, x, color=color, lw=0.3)
        if n_dims >= 2:
            ax.set_xlim(low[0], high[0])
            ax.set_ylim(low[1], high[1])
        if n_dims >= 3:
            ax.set_zlim(low[2], high[2])
        ax.set_title(label)
    spectra = [normalized_power_spectrum(x, smoothing) for x in (x_true, x_gen)]
    for d in range(n_spectra):
        ax = fig.add_subplot(grid[1, 2 * d : 2 * d + 2])
        for spectrum, x, label, color in zip(
            spectra, (x_true, x_gen), ("data", "generated"), ("C0", "C1"), strict=True
        ):
            ax.semilogy(np.fft.rfftfreq(x.shape[0]), spectrum[:, d], color=color, label=label)
        ax.set_xlabel("frequency (cycles / step)")
        ax.set_title(f"power spectrum, dimension {d + 1}")
        if d == 0:
            ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_symbolic_code(x: torch.Tensor | np.ndarray, code: SymbolicCode, path: str | Path, title: str = "") -> Path:
    """Save a PNG: the attractor (first 3 readouts of ``x [T, N >= 2]``, or 2) coloured by symbol, and the graph.

    ``x`` must be aligned with ``code.symbols`` (e.g. ``model.readout(orbit)``). The graph draws the used
    subregions on a circle (area ∝ visits, labelled by bits and visit fraction, ``*`` = stable real fixed point)
    and the transitions between distinct subregions as arrows with width ∝ transition probability.
    """
    x = _numpy(x, "x")
    symbols = code.symbols.cpu().numpy()
    if x.shape[0] != symbols.shape[0] or x.shape[1] < 2:
        raise ValueError(f"x must have shape [T={symbols.shape[0]}, N >= 2], got {x.shape}")
    K = code.bits.shape[0]
    colors = colormaps["tab10"](np.arange(K)) if K <= 10 else colormaps["viridis"](np.linspace(0, 1, K))
    fig = Figure(figsize=(11, 5))
    ax = _add_state_space_axes(fig, 121, x.shape[1])
    ax.scatter(*x[:, : min(x.shape[1], 3)].T, c=colors[symbols], s=0.5, linewidths=0)
    ax.set_title("attractor coloured by subregion")

    graph = fig.add_subplot(1, 2, 2)
    angle = np.pi / 2 - 2 * np.pi * np.arange(K) / K
    position = np.stack([np.cos(angle), np.sin(angle)], 1) if K > 1 else np.zeros((1, 2))
    probability = code.transition_probabilities.numpy()
    for i, j in zip(*np.nonzero(probability), strict=True):
        if i != j:
            arrow = {"arrowstyle": "-|>", "lw": 0.5 + 4 * probability[i, j], "color": "0.3"}
            arrow |= {"connectionstyle": "arc3,rad=0.15", "shrinkA": 18, "shrinkB": 18}
            graph.annotate("", xy=position[j], xytext=position[i], arrowprops=arrow)
    frequency = code.frequencies.numpy()
    graph.scatter(position[:, 0], position[:, 1], s=300 + 3000 * frequency, c=colors[:K], zorder=3)
    fixed = code.fixed_points
    for k in range(K):
        label = "".join("1" if bit else "0" for bit in code.bits[k].tolist())
        if fixed is not None and bool(fixed.in_region[k]) and bool(fixed.stable[k]):
            label += "*"
        graph.text(
            position[k, 0], position[k, 1] - 0.28, f"{label}\n{frequency[k]:.2f}", ha="center", va="top", fontsize=8
        )
    graph.set_xlim(-1.6, 1.6)
    graph.set_ylim(-1.8, 1.5)
    graph.set_aspect("equal")
    graph.axis("off")
    graph.set_title("transition graph")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
