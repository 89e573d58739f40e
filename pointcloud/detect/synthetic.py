"""Synthetic LiDAR-like scenes: a ground plane and car / pedestrian / cyclist boxes seen by a spinning sensor.

The sensor sits at the origin, ``SENSOR_HEIGHT`` above a flat ground (KITTI's mounting height). Its ``beams``
lasers, spread evenly over ``elevation_degrees``, each fire ``azimuth_steps`` times a turn; every ray returns its
first hit among the ground and the boxes (exact ray casting, so nearer objects occlude farther ones and only faces
turned to the sensor return points), with Gaussian range noise. Objects stand on the ground, do not overlap, and
have KITTI's mean size per class jittered by up to 10 %; an object left with fewer than ``min_points`` returns
(hidden behind others, or too far for the beams) is removed from the scene.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

SYNTHETIC_CLASSES = ("Car", "Pedestrian", "Cyclist")
MEAN_SIZES = torch.tensor([[3.9, 1.6, 1.56], [0.8, 0.6, 1.73], [1.76, 0.6, 1.73]])  # dx, dy, dz (metres) per class
SENSOR_HEIGHT = 1.73
MIN_OBJECT_DISTANCE = 3.0


@dataclass(frozen=True)
class SyntheticScene:
    """``points [P, 4]`` float32 (x, y, z in metres, intensity in [0, 1]), ``boxes [M, 7]`` float32 and ``labels
    [M]`` long (indices into ``SYNTHETIC_CLASSES``), all in the LiDAR frame."""

    points: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor


def _place_objects(
    count: int, point_cloud_range: Sequence[float], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``count`` non-overlapping boxes ``[M, 7]`` on the ground inside the range (1 m from its sides,
    ``MIN_OBJECT_DISTANCE`` from the sensor), by rejection sampling, with their labels ``[M]``."""
    x_min, y_min, _, x_max, y_max, _ = point_cloud_range
    boxes, labels = [], []
    for _ in range(20 * count):
        if len(boxes) == count:
            break
        label = int(torch.randint(len(SYNTHETIC_CLASSES), (1,), generator=generator))
        size = MEAN_SIZES[label] * (1 + 0.2 * (torch.rand(3, generator=generator) - 0.5))
        margin = 1.0 + size[:2].norm().item() / 2
        uniform = torch.rand(3, generator=generator).tolist()
        x = x_min + margin + uniform[0] * (x_max - x_min - 2 * margin)
        y = y_min + margin + uniform[1] * (y_max - y_min - 2 * margin)
        heading = (2 * uniform[2] - 1) * math.pi
        box = torch.tensor([x, y, size[2].item() / 2 - SENSOR_HEIGHT, *size.tolist(), heading])
        apart = all((box[:2] - other[:2]).norm() > (box[3:5].norm() + other[3:5].norm()) / 2 + 0.3 for other in boxes)
        if apart and math.hypot(x, y) > MIN_OBJECT_DISTANCE:
            boxes.append(box)
            labels.append(label)
    return torch.stack(boxes) if boxes else torch.zeros(0, 7), torch.tensor(labels, dtype=torch.long)


def _cast_rays(directions: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First-hit distance ``[R]`` (metres, ``inf`` for none) of unit rays ``[R, 3]`` from the origin, and what they
    hit ``[R]``: a box index, or ``len(boxes)`` for the ground.

    Boxes by the slab method in each box's frame: the ray enters at ``max_axis min(t_lo, t_hi)`` and leaves at
    ``min_axis max(t_lo, t_hi)``, ``t = (+-extent / 2 - origin) / direction`` per axis.
    """
    cos, sin = boxes[:, 6].cos(), boxes[:, 6].sin()
    origin = -boxes[:, :3]
    origin = torch.stack(
        [origin[:, 0] * cos + origin[:, 1] * sin, -origin[:, 0] * sin + origin[:, 1] * cos, origin[:, 2]], 1
    )
    local = torch.stack(
        [
            directions[:, None, 0] * cos + directions[:, None, 1] * sin,
            -directions[:, None, 0] * sin + directions[:, None, 1] * cos,
            directions[:, None, 2].expand(-1, len(boxes)),
        ],
        dim=-1,
    )
    local = torch.where(local.abs() < 1e-12, torch.full_like(local, 1e-12), local)
    t_low = (-boxes[:, 3:6] / 2 - origin) / local
    t_high = (boxes[:, 3:6] / 2 - origin) / local
    enter = torch.minimum(t_low, t_high).amax(dim=-1)
    leave = torch.maximum(t_low, t_high).amin(dim=-1)
    box_distance = torch.where((enter <= leave) & (enter > 0), enter, torch.full_like(enter, math.inf))
    falling = directions[:, 2] < 0
    ground_distance = torch.where(falling, SENSOR_HEIGHT / -directions[:, 2].clamp(max=-1e-12), math.inf)
    distance, hit = torch.cat([box_distance, ground_distance[:, None]], dim=1).min(dim=1)
    return distance, hit


def synthetic_scene(
    seed: int,
    point_cloud_range: Sequence[float] = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0),
    num_objects: int = 10,
    beams: int = 64,
    azimuth_steps: int = 2048,
    elevation_degrees: tuple[float, float] = (-24.8, 2.0),
    range_noise: float = 0.01,
    min_points: int = 5,
) -> SyntheticScene:
    """One scene, the same for the same arguments.

    Args:
        seed: seeds every random draw.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in metres; points outside are dropped and
            objects are placed inside.
        num_objects: objects placed (fewer when the range is crowded or some return under ``min_points``).
        beams, azimuth_steps, elevation_degrees: the sensor's rays (KITTI's HDL-64E by default, at half its
            azimuth resolution).
        range_noise: standard deviation of the measured distance, metres.
        min_points: fewest returns that keep an object.
    """
    if len(point_cloud_range) != 6 or not all(
        high > low for low, high in zip(point_cloud_range[:3], point_cloud_range[3:], strict=True)
    ):
        raise ValueError(f"point_cloud_range must be 6 numbers, mins then larger maxs, got {list(point_cloud_range)}")
    if num_objects < 0 or beams < 1 or azimuth_steps < 1:
        raise ValueError(
            f"need num_objects >= 0, beams >= 1, azimuth_steps >= 1; got {num_objects}, {beams}, {azimuth_steps}"
        )
    generator = torch.Generator().manual_seed(seed)
    boxes, labels = _place_objects(num_objects, point_cloud_range, generator)

    elevation = torch.deg2rad(torch.linspace(*elevation_degrees, beams, dtype=torch.float64))
    azimuth = torch.arange(azimuth_steps, dtype=torch.float64) * (2 * math.pi / azimuth_steps)
    elevation, azimuth = (grid.flatten() for grid in torch.meshgrid(elevation, azimuth, indexing="ij"))
    directions = torch.stack([elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], 1)
    low, high = torch.tensor(point_cloud_range[:3]), torch.tensor(point_cloud_range[3:])
    while True:
        distance, hit = _cast_rays(directions, boxes.double())
        inside = ((directions * distance[:, None] >= low) & (directions * distance[:, None] < high)).all(dim=1)
        returns = torch.bincount(hit[inside], minlength=len(boxes) + 1)[: len(boxes)]
        if (returns >= min_points).all():
            break
        boxes, labels = boxes[returns >= min_points], labels[returns >= min_points]

    distance = distance + range_noise * torch.randn(distance.shape, generator=generator, dtype=torch.float64)
    xyz = directions * distance[:, None]
    reflectance = torch.cat([0.2 + 0.7 * torch.rand(len(boxes), generator=generator), torch.tensor([0.15])])
    intensity = reflectance[hit] + 0.05 * torch.randn(len(hit), generator=generator)
    points = torch.cat([xyz.float(), intensity.clamp(0, 1)[:, None]], dim=1)
    keep = ((xyz >= low) & (xyz < high)).all(dim=1) & distance.isfinite()
    return SyntheticScene(points[keep], boxes, labels)
