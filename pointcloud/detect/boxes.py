"""Box geometry in OpenPCDet's convention: ``[x, y, z, dx, dy, dz, heading]`` in the LiDAR frame (metres, radians).

``(x, y, z)`` is the box centre (z at mid-height), ``dx, dy, dz`` the extents along the box's own axes, and
``heading`` the counter-clockwise angle from the LiDAR x axis to the box's x axis, seen from above.
"""

import torch

BOX_CODE_SIZE = 7


def check_boxes(boxes: torch.Tensor, name: str = "boxes") -> None:
    """Raise ``ValueError`` unless ``boxes`` is a floating tensor ``[..., 7]``."""
    if not isinstance(boxes, torch.Tensor) or not boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating torch.Tensor [..., 7], got {type(boxes).__name__}")
    if boxes.ndim == 0 or boxes.shape[-1] != BOX_CODE_SIZE:
        raise ValueError(f"{name} must have shape [..., 7] (x, y, z, dx, dy, dz, heading), got {tuple(boxes.shape)}")


def bev_corners(boxes: torch.Tensor) -> torch.Tensor:
    """The four bird's-eye-view corners ``[..., 4, 2]`` (x, y in metres) of ``boxes [..., 7]``, counter-clockwise."""
    half = boxes[..., 3:5, None] / 2
    local_x = half[..., 0, :] * boxes.new_tensor([1.0, -1.0, -1.0, 1.0])
    local_y = half[..., 1, :] * boxes.new_tensor([1.0, 1.0, -1.0, -1.0])
    cos, sin = boxes[..., 6, None].cos(), boxes[..., 6, None].sin()
    x = boxes[..., 0, None] + local_x * cos - local_y * sin
    y = boxes[..., 1, None] + local_x * sin + local_y * cos
    return torch.stack([x, y], dim=-1)


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Which points lie inside which boxes (faces included): ``[P, M]`` bool for ``points [P, 3+]``, ``boxes [M, 7]``.

    A point ``p`` is inside when its offset ``R(-heading) (p - centre)`` is within ``+-(dx, dy, dz) / 2``.
    """
    check_boxes(boxes)
    offset = points[:, None, :3] - boxes[None, :, :3]
    cos, sin = boxes[:, 6].cos(), boxes[:, 6].sin()
    local_x = offset[..., 0] * cos + offset[..., 1] * sin
    local_y = -offset[..., 0] * sin + offset[..., 1] * cos
    local = torch.stack([local_x, local_y, offset[..., 2]], dim=-1)
    return (local.abs() <= boxes[None, :, 3:6] / 2).all(dim=-1)
