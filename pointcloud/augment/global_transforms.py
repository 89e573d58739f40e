"""Global augmentations of a whole scene: flip, rotation and scaling, applied alike to points and boxes.

OpenPCDet's ``random_world_flip`` (along x), ``random_world_rotation`` and ``random_world_scaling``. Points are
``[P, F]`` (x, y, z in metres, then any other features, left as they are); boxes ``[M, 7]`` are ``[x, y, z, dx, dy,
dz, heading]`` in the LiDAR frame (see ``detect.boxes``). Each transform is a rigid motion or a uniform scaling of
space, so a point inside a box before it is inside the transformed box after it.
"""

import math
from collections.abc import Sequence

import torch

from ..detect.boxes import check_boxes


def _check_scene(points: torch.Tensor, boxes: torch.Tensor) -> None:
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] < 3:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be [P, F] with F >= 3 (x, y, z, ...), got {shape}")
    check_boxes(boxes)
    if boxes.ndim != 2:
        raise ValueError(f"boxes must be [M, 7], got {tuple(boxes.shape)}")


def flip_x(points: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror the scene in the x axis (the x-z plane): ``y -> -y`` for points and box centres, ``heading ->
    -heading``. Returns new ``(points [P, F], boxes [M, 7])``."""
    _check_scene(points, boxes)
    points, boxes = points.clone(), boxes.clone()
    points[:, 1] = -points[:, 1]
    boxes[:, 1], boxes[:, 6] = -boxes[:, 1], -boxes[:, 6]
    return points, boxes


def rotate_z(points: torch.Tensor, boxes: torch.Tensor, angle: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate the scene about the z axis by ``angle`` radians (counter-clockwise seen from above): points and box
    centres turn, ``heading + angle`` is wrapped into ``[-pi, pi)``. Returns new ``(points [P, F], boxes [M, 7])``."""
    _check_scene(points, boxes)
    points, boxes = points.clone(), boxes.clone()
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = points.new_tensor([[cos, sin], [-sin, cos]])  # row vectors: [x, y] @ rotation turns them by +angle
    points[:, :2] = points[:, :2] @ rotation
    boxes[:, :2] = boxes[:, :2] @ rotation.to(boxes.dtype)
    boxes[:, 6] = torch.remainder(boxes[:, 6] + angle + math.pi, 2 * math.pi) - math.pi
    return points, boxes


def scale(points: torch.Tensor, boxes: torch.Tensor, factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale space about the origin by ``factor > 0``: point coordinates, box centres and sizes; headings and the
    other point features are kept. Returns new ``(points [P, F], boxes [M, 7])``."""
    _check_scene(points, boxes)
    if not factor > 0:
        raise ValueError(f"factor must be positive, got {factor}")
    points, boxes = points.clone(), boxes.clone()
    points[:, :3] *= factor
    boxes[:, :6] *= factor
    return points, boxes


class RandomGlobalTransform:
    """OpenPCDet's three global augmentations in its order, with parameters drawn from a ``torch.Generator``.

    ``flip_x`` with probability ``flip_probability``; ``rotate_z`` by an angle uniform in ``[-rotation,
    rotation]`` radians; ``scale`` by a factor uniform in ``[scaling[0], scaling[1]]``. Three numbers are drawn on
    every call, whatever the settings, so a generator's stream does not depend on them. LION's KITTI recipe: 0.5,
    pi / 4, (0.95, 1.05).
    """

    def __init__(self, flip_probability: float, rotation: float, scaling: Sequence[float]) -> None:
        if len(scaling) != 2:
            raise ValueError(f"scaling must be (low, high), got {list(scaling)}")
        if not 0 <= flip_probability <= 1 or not rotation >= 0 or not 0 < scaling[0] <= scaling[1]:
            raise ValueError(
                f"need flip_probability in [0, 1], rotation >= 0 and 0 < scaling[0] <= scaling[1]; got "
                f"{flip_probability}, {rotation}, {list(scaling)}"
            )
        self.flip_probability, self.rotation = float(flip_probability), float(rotation)
        self.scaling = (float(scaling[0]), float(scaling[1]))

    def __call__(
        self, points: torch.Tensor, boxes: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformed ``(points [P, F], boxes [M, 7])``; the inputs are not changed."""
        flip = torch.rand((), generator=generator).item() < self.flip_probability
        angle = (2 * torch.rand((), generator=generator).item() - 1) * self.rotation
        factor = self.scaling[0] + (self.scaling[1] - self.scaling[0]) * torch.rand((), generator=generator).item()
        if flip:
            points, boxes = flip_x(points, boxes)
        points, boxes = rotate_z(points, boxes, angle)
        return scale(points, boxes, factor)
