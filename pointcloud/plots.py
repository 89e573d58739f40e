"""Bird's-eye-view picture of a scene: its points from above with true and predicted boxes.

Drawn on matplotlib's Agg canvas directly (no pyplot), so it never changes the backend of the caller's session.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .detect import bev_corners


def _draw_boxes(axis, boxes: torch.Tensor, colour: str) -> None:
    for corners in bev_corners(boxes.float()).tolist():
        closed = [*corners, corners[0]]
        axis.plot(*zip(*closed, strict=True), color=colour, linewidth=1.2)
        front = (corners[0][0] + corners[3][0]) / 2, (corners[0][1] + corners[3][1]) / 2
        centre = sum(c[0] for c in corners) / 4, sum(c[1] for c in corners) / 4
        axis.plot([centre[0], front[0]], [centre[1], front[1]], color=colour, linewidth=1.2)


def plot_bev(
    points: torch.Tensor,
    true_boxes: torch.Tensor,
    predicted_boxes: torch.Tensor,
    path: str | Path,
    point_cloud_range: Sequence[float],
) -> Path:
    """Write ``path`` (PNG): ``points [P, 3+]`` from above (grey, x to the right, y up), ``true_boxes [M, 7]`` in
    green and ``predicted_boxes [K, 7]`` in red, each with a line from its centre to its front face (the heading);
    the view spans ``point_cloud_range``'s x and y. Returns ``path``."""
    path = Path(path)
    x_min, y_min, _, x_max, y_max, _ = point_cloud_range
    width = 8.0
    figure = Figure(figsize=(width, width * (y_max - y_min) / (x_max - x_min) + 0.5))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    cloud = points.detach().cpu()
    axis.scatter(cloud[:, 0], cloud[:, 1], s=1.0, c="0.35", linewidths=0)
    _draw_boxes(axis, true_boxes.detach().cpu(), "tab:green")
    _draw_boxes(axis, predicted_boxes.detach().cpu(), "tab:red")
    axis.set_title(f"true boxes (green): {len(true_boxes)}, predicted (red): {len(predicted_boxes)}")
    axis.set_xlim(x_min, x_max)
    axis.set_ylim(y_min, y_max)
    axis.set_aspect("equal")
    axis.set_xlabel("x (m)")
    axis.set_ylabel("y (m)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
