"""A BEV segmentation head for the unified model (UniLION's ``SegMapHead`` role) and the footprint masks we train
it on.

UniLION segments nuScenes map layers (drivable area, crossings, ...); KITTI and our synthetic scenes have no map,
so the stand-in target is each class's object footprint seen from above: a BEV cell is on for class ``k`` when its
centre lies inside the top view of a box of class ``k``. The head and loss do not depend on what the layers mean.
"""

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..detect.boxes import points_in_boxes


def footprint_masks(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    point_cloud_range: Sequence[float],
    cell_size: Sequence[float],
    shape: Sequence[int],
) -> torch.Tensor:
    """Masks ``[num_classes, H, W]`` bool of ``boxes [M, 7]`` with class ``labels [M]`` on the BEV grid whose cell
    ``(row i, column j)`` is centred at ``(x_min + (j + 1/2) c_x, y_min + (i + 1/2) c_y)``."""
    height, width = shape
    c_x, c_y = cell_size
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    centres = torch.stack(
        [point_cloud_range[0] + (cols + 0.5) * c_x, point_cloud_range[1] + (rows + 0.5) * c_y, torch.zeros_like(rows)],
        dim=-1,
    ).reshape(-1, 3)
    masks = torch.zeros(num_classes, height * width, dtype=torch.bool)
    if len(boxes):
        flat = boxes.detach().cpu().double().clone()
        flat[:, 2], flat[:, 5] = 0.0, 1.0  # top view: any height
        inside = points_in_boxes(centres.double(), flat)  # [H*W, M]
        for label in labels.unique().tolist():
            masks[label] = inside[:, (labels.cpu() == label)].any(dim=1)
    return masks.reshape(num_classes, height, width).to(boxes.device)


class BEVSegmentationHead(nn.Module):
    """``[B, C, H, W]`` BEV features -> ``[B, K, H, W]`` logits, one binary layer per class."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, num_classes, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)

    @staticmethod
    def loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of ``logits [B, K, H, W]`` against ``masks`` of the same shape."""
        return F.binary_cross_entropy_with_logits(logits, masks.to(logits.dtype))
