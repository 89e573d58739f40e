"""Plots of a finished run, drawn from what Lightning wrote (no training code here)."""

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def read_metrics_csv(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``CSVLogger``'s ``metrics.csv`` as ``{metric: [(step, value), ...]}`` (empty cells skipped)."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    series.setdefault(key, []).append((step, float(value)))
    return series


def plot_training_curves(metrics_csv: Path, out: Path) -> Path:
    """One panel per metric kind (``loss``, ``acc``, ...), train and val curves against the optimiser step."""
    series = read_metrics_csv(metrics_csv)
    kinds = sorted({key.split("/")[-1] for key in series if not key.startswith("test/")})
    if not kinds:
        raise ValueError(f"{metrics_csv} holds no train/val metrics to plot")
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for key, points in sorted(series.items()):
            if key.split("/")[-1] == kind and not key.startswith("test/"):
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="o" if len(points) < 30 else None, label=key)
        ax.set_xlabel("step")
        ax.set_title(kind)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_confusion_matrix(matrix: torch.Tensor, class_names: list[str], out: Path) -> Path:
    """``matrix [K, K]`` of counts (rows: true class, columns: predicted), normalised per row."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(class_names):
        raise ValueError(f"need a [K, K] matrix and K names, got {tuple(matrix.shape)} and {len(class_names)}")
    rates = (matrix.float() / matrix.sum(dim=1, keepdim=True).clamp(min=1)).cpu()
    size = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * size, 0.6 + 0.7 * size))
    ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
    for i in range(size):
        for j in range(size):
            ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", color="white" if rates[i, j] > 0.5 else "k")
    ax.set_xticks(range(size), class_names, rotation=45, ha="right")
    ax.set_yticks(range(size), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("test set, fraction of each true class")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
