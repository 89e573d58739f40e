"""Rotated bird's-eye-view and 3D intersection-over-union of boxes ``[x, y, z, dx, dy, dz, heading]`` (see ``boxes``).

The BEV intersection of two rotated rectangles is a convex polygon, found by Sutherland-Hodgman clipping of one
rectangle by the four edges of the other and measured by the shoelace formula; every pair is clipped at once,
with padded vertex lists (a convex polygon clipped by a half-plane gains at most one vertex, so 8 always suffice).
The 3D intersection is that area times the overlap of the two boxes' z intervals.
"""

import torch

from .boxes import bev_corners, check_boxes

MAX_POLYGON_VERTICES = 8


def _cross(origin: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z of ``(a - origin) x (b - origin)``; positive when ``b`` lies left of the ray from ``origin`` through ``a``."""
    return (a[..., 0] - origin[..., 0]) * (b[..., 1] - origin[..., 1]) - (a[..., 1] - origin[..., 1]) * (
        b[..., 0] - origin[..., 0]
    )


def _next_vertex(polygon: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Each vertex's successor around a padded polygon ``[..., K, 2]`` with ``count [...]`` valid leading vertices."""
    index = torch.arange(polygon.shape[-2], device=polygon.device)
    following = (index + 1) % count.clamp(min=1)[..., None]
    return torch.gather(polygon, -2, following[..., None].expand(polygon.shape))


def _clip_by_half_plane(
    polygon: torch.Tensor, count: torch.Tensor, edge_start: torch.Tensor, edge_end: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Sutherland-Hodgman step: keep the part of ``polygon [..., K, 2]`` left of the directed edge.

    Each valid vertex emits itself if inside, then the crossing point if the edge to its successor crosses the
    line. The emitted points are compacted to the front; returns ``([..., 8, 2], count [...])``.
    """
    following = _next_vertex(polygon, count)
    side = _cross(edge_start[..., None, :], edge_end[..., None, :], polygon)
    following_side = _cross(edge_start[..., None, :], edge_end[..., None, :], following)
    valid = torch.arange(polygon.shape[-2], device=polygon.device) < count[..., None]
    inside, following_inside = side >= 0, following_side >= 0
    crosses = valid & (inside != following_inside)
    denominator = torch.where(crosses, side - following_side, torch.ones_like(side))
    fraction = (side / denominator)[..., None]
    crossing = polygon + fraction * (following - polygon)

    emitted = torch.stack([polygon, crossing], dim=-2).flatten(-3, -2)
    keep = torch.stack([valid & inside, crosses], dim=-1).flatten(-2)
    order = torch.argsort((~keep).to(torch.uint8), dim=-1, stable=True)[..., :MAX_POLYGON_VERTICES]
    compacted = torch.gather(emitted, -2, order[..., None].expand(*order.shape, 2))
    return compacted, keep.sum(dim=-1).clamp(max=MAX_POLYGON_VERTICES)


def _polygon_area(polygon: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Shoelace area ``[...]`` of a padded counter-clockwise polygon ``[..., K, 2]``; zero below three vertices."""
    following = _next_vertex(polygon, count)
    valid = torch.arange(polygon.shape[-2], device=polygon.device) < count[..., None]
    twice_area = polygon[..., 0] * following[..., 1] - polygon[..., 1] * following[..., 0]
    area = (twice_area * valid).sum(dim=-1) / 2
    return torch.where(count >= 3, area.clamp(min=0), torch.zeros_like(area))


def _rectangle_intersection_area(corners_a: torch.Tensor, corners_b: torch.Tensor) -> torch.Tensor:
    """Area ``[...]`` common to counter-clockwise rectangles ``corners_a, corners_b [..., 4, 2]``."""
    polygon = torch.cat([corners_a, corners_a.new_zeros(*corners_a.shape[:-2], MAX_POLYGON_VERTICES - 4, 2)], -2)
    count = torch.full(corners_a.shape[:-2], 4, dtype=torch.long, device=corners_a.device)
    for edge in range(4):
        polygon, count = _clip_by_half_plane(polygon, count, corners_b[..., edge, :], corners_b[..., (edge + 1) % 4, :])
    return _polygon_area(polygon, count)


def bev_intersection_area(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """Area (square metres) of the bird's-eye-view overlap of rotated boxes.

    Args:
        boxes_a: ``[N, 7]``; boxes_b: ``[M, 7]`` (``M = N`` when ``aligned``).
        aligned: pair ``boxes_a[i]`` with ``boxes_b[i]`` only (``[N]`` result) instead of every pair (``[N, M]``).

    Pairs whose circumscribed circles are apart are not clipped (their overlap is zero).
    """
    check_boxes(boxes_a, "boxes_a")
    check_boxes(boxes_b, "boxes_b")
    if boxes_a.ndim != 2 or boxes_b.ndim != 2:
        raise ValueError(
            f"boxes_a and boxes_b must be [N, 7] and [M, 7], got {tuple(boxes_a.shape)}, {tuple(boxes_b.shape)}"
        )
    if aligned and len(boxes_a) != len(boxes_b):
        raise ValueError(f"aligned boxes need as many rows: boxes_a has {len(boxes_a)}, boxes_b {len(boxes_b)}")
    if not aligned:
        boxes_a, boxes_b = torch.broadcast_tensors(boxes_a[:, None], boxes_b[None, :])
    centre_distance = (boxes_a[..., :2] - boxes_b[..., :2]).norm(dim=-1)
    radii = (boxes_a[..., 3:5].norm(dim=-1) + boxes_b[..., 3:5].norm(dim=-1)) / 2
    near = centre_distance < radii
    area = boxes_a.new_zeros(near.shape)
    area[near] = _rectangle_intersection_area(bev_corners(boxes_a[near]), bev_corners(boxes_b[near]))
    return area


def _z_overlap(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool) -> torch.Tensor:
    """Length (metres) common to the boxes' vertical extents, ``[N]`` or ``[N, M]``."""
    if not aligned:
        boxes_a, boxes_b = boxes_a[:, None], boxes_b[None, :]
    top = torch.minimum(boxes_a[..., 2] + boxes_a[..., 5] / 2, boxes_b[..., 2] + boxes_b[..., 5] / 2)
    bottom = torch.maximum(boxes_a[..., 2] - boxes_a[..., 5] / 2, boxes_b[..., 2] - boxes_b[..., 5] / 2)
    return (top - bottom).clamp(min=0)


def _union_ratio(intersection: torch.Tensor, size_a: torch.Tensor, size_b: torch.Tensor, aligned: bool) -> torch.Tensor:
    union = size_a + size_b if aligned else size_a[:, None] + size_b[None, :]
    return intersection / (union - intersection).clamp(min=torch.finfo(intersection.dtype).eps)


def bev_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """Bird's-eye-view IoU ``area(A & B) / area(A | B)`` of rotated boxes ``[N, 7]``, ``[M, 7]``: ``[N, M]``, or
    ``[N]`` when ``aligned``."""
    intersection = bev_intersection_area(boxes_a, boxes_b, aligned)
    area_a, area_b = boxes_a[:, 3] * boxes_a[:, 4], boxes_b[:, 3] * boxes_b[:, 4]
    return _union_ratio(intersection, area_a, area_b, aligned)


def iou_3d(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """3D IoU ``vol(A & B) / vol(A | B)`` of boxes rotated about z, ``[N, 7]``, ``[M, 7]``: ``[N, M]``, or ``[N]`` when
    ``aligned``; ``vol(A & B)`` is the BEV overlap area times the z overlap."""
    intersection = bev_intersection_area(boxes_a, boxes_b, aligned) * _z_overlap(boxes_a, boxes_b, aligned)
    volume_a, volume_b = boxes_a[:, 3:6].prod(dim=-1), boxes_b[:, 3:6].prod(dim=-1)
    return _union_ratio(intersection, volume_a, volume_b, aligned)
