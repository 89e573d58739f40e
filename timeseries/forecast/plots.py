"""A picture of one forecast: the input window, the forecast and the truth, one panel per channel."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _as_columns(values: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    """``[T]`` or ``[T, C]`` (numpy or torch) as a float ``[T, C]`` array."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be [T] or [T, C], got shape {array.shape}")
    return array.astype(np.float64)


def plot_forecast(
    history: np.ndarray | torch.Tensor,
    forecast: np.ndarray | torch.Tensor,
    truth: np.ndarray | torch.Tensor | None,
    path: str | Path,
    names: list[str] | tuple[str, ...] | None = None,
) -> Path:
    """Draw ``history [L, C]`` (steps ``-L .. -1``), ``forecast [H, C]`` and ``truth [H, C]`` (steps ``0 .. H-1``;
    None when unknown) to ``path`` (PNG); 1-d arrays are one channel. Returns ``path``."""
    past, pred = _as_columns(history, "history"), _as_columns(forecast, "forecast")
    real = None if truth is None else _as_columns(truth, "truth")
    channels = pred.shape[1]
    if past.shape[1] != channels or (real is not None and real.shape != pred.shape):
        shapes = f"history {past.shape}, forecast {pred.shape}, truth {None if real is None else real.shape}"
        raise ValueError(f"history, forecast and truth need the same channels (truth: the forecast's shape): {shapes}")
    names = list(names) if names is not None else [f"channel {c}" for c in range(channels)]
    if len(names) != channels:
        raise ValueError(f"need {channels} names, got {len(names)}")
    steps_past, steps_future = np.arange(-past.shape[0], 0), np.arange(pred.shape[0])
    fig, axes = plt.subplots(channels, 1, figsize=(10, 2.6 * channels), squeeze=False, sharex=True)
    for c, ax in enumerate(axes[:, 0]):
        ax.plot(steps_past, past[:, c], color="0.3", lw=1, label="history")
        if real is not None:
            ax.plot(steps_future, real[:, c], color="tab:blue", lw=1, label="truth")
        ax.plot(steps_future, pred[:, c], color="tab:orange", lw=1.2, label="forecast")
        ax.axvline(0, color="0.6", ls="--", lw=0.8)
        ax.set_ylabel(names[c])
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", ncol=3)
    axes[-1, 0].set_xlabel("step (0 = first forecast step)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
