"""CenterPoint training targets on a BEV grid (OpenPCDet's ``CenterHead.assign_target_of_single_head``).

A box centre ``(x, y)`` in metres lands at the feature-map position ``u = (x - x_min) / (v_x s)``,
``v = (y - y_min) / (v_y s)`` (voxel size ``v``, feature-map stride ``s``). Its class heatmap gets a Gaussian at
the pixel ``(floor u, floor v)`` whose radius comes from the box's BEV size in pixels (``gaussian_radius``); the
regression target at that pixel is ``(u - floor u, v - floor v, z, log dx, log dy, log dz, cos heading, sin
heading)``.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

REGRESSION_CODE_SIZE = 8


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float) -> torch.Tensor:
    """CenterNet's radius (pixels) by which a box of ``height x width`` pixels may shift and keep ``min_overlap``.

    The smallest root of the three quadratic cases of CornerNet, as OpenPCDet (and CenterPoint) compute it,
    ``r = (b + sqrt(b^2 - 4 a c)) / 2`` for each case's ``(a, b, c)``.
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + (b1**2 - 4 * c1).sqrt()) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + (b2**2 - 16 * c2).sqrt()) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + (b3**2 - 4 * a3 * c3).sqrt()) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_gaussian(heatmap: torch.Tensor, centre_x: int, centre_y: int, radius: int) -> None:
    """Raise ``heatmap [H, W]`` in place to ``exp(-(dx^2 + dy^2) / (2 sigma^2))``, ``sigma = (2 r + 1) / 6``, over
    the ``(2 r + 1)``-pixel square around ``(centre_x, centre_y)`` (clipped at the borders)."""
    height, width = heatmap.shape
    sigma = (2 * radius + 1) / 6
    offsets = torch.arange(-radius, radius + 1, dtype=heatmap.dtype, device=heatmap.device)
    gaussian = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    gaussian[gaussian < torch.finfo(heatmap.dtype).eps * gaussian.max()] = 0
    left, right = min(centre_x, radius), min(width - centre_x, radius + 1)
    top, bottom = min(centre_y, radius), min(height - centre_y, radius + 1)
    window = heatmap[centre_y - top : centre_y + bottom, centre_x - left : centre_x + right]
    torch.maximum(window, gaussian[radius - top : radius + bottom, radius - left : radius + right], out=window)


@dataclass(frozen=True)
class CenterTargets:
    """Targets of a batch: ``heatmap [B, num_classes, H, W]`` in [0, 1], and per object slot ``index [B, K]`` (the
    flattened pixel ``v * W + u``), ``mask [B, K]`` (slot used), ``regression [B, K, 8]``, ``boxes [B, K, 7]`` (the
    boxes themselves, for the IoU branch)."""

    heatmap: torch.Tensor
    index: torch.Tensor
    mask: torch.Tensor
    regression: torch.Tensor
    boxes: torch.Tensor


def assign_targets(
    boxes: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    num_classes: int,
    feature_map_size: tuple[int, int],
    point_cloud_range: Sequence[float],
    voxel_size: Sequence[float],
    feature_map_stride: int,
    max_objects: int = 500,
    min_overlap: float = 0.1,
    min_radius: int = 2,
) -> CenterTargets:
    """CenterPoint targets for a batch.

    Args:
        boxes: one ``[M_b, 7]`` per sample (LiDAR frame, metres, radians).
        labels: one ``[M_b]`` per sample, class indices in ``[0, num_classes)``.
        feature_map_size: ``(H, W)`` of the BEV map (``H`` along y, ``W`` along x).
        point_cloud_range, voxel_size: as in ``voxelize`` (metres).
        feature_map_stride: voxels per feature-map pixel.
        max_objects: object slots per sample; boxes beyond it are dropped.
        min_overlap, min_radius: Gaussian radius ``max(int(gaussian_radius(dy, dx, min_overlap)), min_radius)``.

    Boxes with a non-positive BEV size or whose centre falls off the map get no target.
    """
    if len(boxes) != len(labels):
        raise ValueError(f"boxes and labels must have one entry per sample, got {len(boxes)} and {len(labels)}")
    height, width = feature_map_size
    batch_size = len(boxes)
    device = boxes[0].device if batch_size else torch.device("cpu")
    heatmap = torch.zeros(batch_size, num_classes, height, width, device=device)
    index = torch.zeros(batch_size, max_objects, dtype=torch.long, device=device)
    mask = torch.zeros(batch_size, max_objects, dtype=torch.bool, device=device)
    regression = torch.zeros(batch_size, max_objects, REGRESSION_CODE_SIZE, device=device)
    target_boxes = torch.zeros(batch_size, max_objects, 7, device=device)
    cell = torch.tensor([voxel_size[0], voxel_size[1]], device=device) * feature_map_stride
    low = torch.tensor(point_cloud_range[:2], device=device)
    for sample, (sample_boxes, sample_labels) in enumerate(zip(boxes, labels, strict=True)):
        if sample_boxes.ndim != 2 or sample_boxes.shape[1] != 7 or sample_labels.shape != sample_boxes.shape[:1]:
            raise ValueError(
                f"sample {sample}: boxes must be [M, 7] and labels [M], got {tuple(sample_boxes.shape)} and "
                f"{tuple(sample_labels.shape)}"
            )
        sample_boxes = sample_boxes.float()
        centre = (sample_boxes[:, :2] - low) / cell
        centre_pixel = centre.floor().long()
        size = sample_boxes[:, 3:5] / cell
        radius = gaussian_radius(size[:, 1], size[:, 0], min_overlap).int().clamp(min=min_radius)
        on_map = (centre_pixel[:, 0] >= 0) & (centre_pixel[:, 0] < width) & (centre_pixel[:, 1] >= 0)
        valid = on_map & (centre_pixel[:, 1] < height) & (size > 0).all(dim=1)
        slot = 0
        for k in valid.nonzero().flatten().tolist()[:max_objects]:
            u, v = centre_pixel[k].tolist()
            draw_gaussian(heatmap[sample, int(sample_labels[k])], u, v, int(radius[k]))
            index[sample, slot] = v * width + u
            mask[sample, slot] = True
            box = sample_boxes[k]
            regression[sample, slot] = torch.cat(
                [centre[k] - centre_pixel[k], box[2:3], box[3:6].log(), box[6:7].cos(), box[6:7].sin()]
            )
            target_boxes[sample, slot] = box
            slot += 1
    return CenterTargets(heatmap, index, mask, regression, target_boxes)
