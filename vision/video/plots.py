"""The PNG strip of a rollout: context frames, then predicted and true frames at the same times.

Drawn on matplotlib's Agg canvas directly (no pyplot), so it never changes the backend of the caller's session.
"""

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _evenly_spaced(count: int, n: int) -> list[int]:
    """``min(n, count)`` indices from 0 to ``count - 1``, both ends included."""
    return sorted({round(float(i)) for i in np.linspace(0, count - 1, min(n, count))})


def _image(frame: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] -> an ``[H, W]`` or ``[H, W, 3]`` array in [0, 1]."""
    image = ((frame.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def plot_rollout_strip(
    context: torch.Tensor, prediction: torch.Tensor, truth: torch.Tensor, path: str | Path, n_frames: int = 8
) -> Path:
    """Save a 3-row PNG: ``n_frames`` context frames ``[Tc, C, H, W]`` (evenly spaced, ending at the last), then
    ``n_frames`` predicted frames ``[Tp, C, H, W]`` and the true ones ``[Tp, C, H, W]`` at the same evenly spaced
    times (the first and last predicted frames included). Frames are in [-1, 1]; titles give frame indices."""
    if prediction.shape != truth.shape or prediction.dim() != 4 or context.shape[1:] != truth.shape[1:]:
        raise ValueError(
            f"need context [Tc, C, H, W] and prediction, truth [Tp, C, H, W] of one frame shape, got "
            f"{tuple(context.shape)}, {tuple(prediction.shape)} and {tuple(truth.shape)}"
        )
    n_context = context.shape[0]
    rows = {
        "context": [(t, context[t]) for t in _evenly_spaced(n_context, n_frames)],
        "prediction": [(n_context + t, prediction[t]) for t in _evenly_spaced(prediction.shape[0], n_frames)],
        "truth": [(n_context + t, truth[t]) for t in _evenly_spaced(truth.shape[0], n_frames)],
    }
    columns = max(len(frames) for frames in rows.values())
    fig = Figure(figsize=(1.3 * columns, 1.45 * len(rows)))
    for r, (name, frames) in enumerate(rows.items()):
        for c in range(columns):
            ax = fig.add_subplot(len(rows), columns, r * columns + c + 1)
            ax.set_axis_off()
            if c < len(frames):
                t, frame = frames[c]
                ax.imshow(_image(frame), cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{name} t={t}" if c == 0 else f"t={t}", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(path)
    return path
