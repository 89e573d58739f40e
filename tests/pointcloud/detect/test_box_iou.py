import math

import pytest
import torch
from lrnn.pointcloud.detect.box_iou import bev_intersection_area, bev_iou, iou_3d
from lrnn.pointcloud.detect.boxes import bev_corners


def box(x, y, dx, dy, heading, z=0.0, dz=1.0):
    return [x, y, z, dx, dy, dz, heading]


def random_boxes(n, generator):
    centre = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 6 - 3
    z = torch.rand(n, 1, generator=generator, dtype=torch.float64) * 2 - 1
    size = torch.rand(n, 3, generator=generator, dtype=torch.float64) * 4 + 0.2
    heading = torch.rand(n, 1, generator=generator, dtype=torch.float64) * 4 * math.pi - 2 * math.pi
    return torch.cat([centre, z, size, heading], dim=1)


def shapely_intersection(a, b):
    """The reference: shapely's polygon intersection (the tests that use it skip without shapely)."""
    Polygon = pytest.importorskip("shapely.geometry").Polygon
    polygon_a, polygon_b = (Polygon(bev_corners(box_).tolist()) for box_ in (a, b))
    return polygon_a.intersection(polygon_b).area


def test_hand_made_cases():
    cases = [
        (box(0, 0, 2, 2, 0), box(0, 0, 2, 2, 0), 1.0),  # identical
        (box(0, 0, 2, 2, 0), box(1, 0, 2, 2, 0), 2 / 6),  # axis-aligned, half overlap
        (box(0, 0, 2, 2, 0), box(5, 0, 2, 2, 0.3), 0.0),  # disjoint
        (box(0, 0, 4, 4, 0.2), box(0.3, -0.2, 1, 2, 1.1), 2 / 16),  # contained
        (box(0, 0, 2, 2, 0), box(0, 0, 2, 2, math.pi / 2), 1.0),  # square turned a quarter
        # a square and the same square turned 45 degrees: the overlap is a regular octagon of area 8(sqrt2 - 1)
        (box(0, 0, 2, 2, 0), box(0, 0, 2, 2, math.pi / 4), 8 * (2**0.5 - 1) / (8 - 8 * (2**0.5 - 1))),
        (box(0, 0, 4, 2, 0), box(2, 1, 4, 2, 0), 2 / 14),  # corner overlap
        (box(0, 0, 2, 2, 0), box(2, 0, 2, 2, 0), 0.0),  # touching along an edge
    ]
    a = torch.tensor([case[0] for case in cases], dtype=torch.float64)
    b = torch.tensor([case[1] for case in cases], dtype=torch.float64)
    expected = torch.tensor([case[2] for case in cases], dtype=torch.float64)
    torch.testing.assert_close(bev_iou(a, b, aligned=True), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(bev_iou(a, b).diagonal(), expected, atol=1e-12, rtol=0)


def test_matches_shapely_on_random_boxes():
    generator = torch.Generator().manual_seed(0)
    a, b = random_boxes(60, generator), random_boxes(50, generator)
    expected = torch.tensor([[shapely_intersection(box_a, box_b) for box_b in b] for box_a in a], dtype=torch.float64)
    area = bev_intersection_area(a, b)
    assert (expected > 0).float().mean() > 0.3  # the sample exercises overlaps
    torch.testing.assert_close(area, expected, atol=1e-9, rtol=0)
    torch.testing.assert_close(bev_intersection_area(a[:50], b, aligned=True), expected[:50].diagonal())
    assert bev_intersection_area(a.float(), b.float()).dtype == torch.float32
    torch.testing.assert_close(bev_intersection_area(a.float(), b.float()).double(), expected, atol=1e-4, rtol=0)


def test_near_coincident_boxes_match_shapely():
    generator = torch.Generator().manual_seed(1)
    a = random_boxes(40, generator)
    b = a + torch.randn(a.shape, generator=generator, dtype=torch.float64) * 1e-7
    expected = torch.tensor(
        [shapely_intersection(box_a, box_b) for box_a, box_b in zip(a, b, strict=True)], dtype=torch.float64
    )
    torch.testing.assert_close(bev_intersection_area(a, b, aligned=True), expected, atol=1e-9, rtol=0)


def test_3d_iou_is_bev_intersection_times_z_overlap():
    a = torch.tensor([box(0, 0, 2, 2, 0, z=0.0, dz=2.0)], dtype=torch.float64)
    b = torch.tensor([box(1, 0, 2, 2, 0, z=1.0, dz=2.0), box(0, 0, 2, 2, 0, z=3.0, dz=2.0)], dtype=torch.float64)
    # first pair: BEV overlap 2 m^2, z overlap 1 m, each volume 8 m^3
    torch.testing.assert_close(iou_3d(a, b), torch.tensor([[2 / 14, 0.0]], dtype=torch.float64))

    generator = torch.Generator().manual_seed(2)
    a, b = random_boxes(30, generator), random_boxes(30, generator)
    area = torch.tensor(
        [shapely_intersection(box_a, box_b) for box_a, box_b in zip(a, b, strict=True)], dtype=torch.float64
    )
    top = torch.minimum(a[:, 2] + a[:, 5] / 2, b[:, 2] + b[:, 5] / 2)
    bottom = torch.maximum(a[:, 2] - a[:, 5] / 2, b[:, 2] - b[:, 5] / 2)
    intersection = area * (top - bottom).clamp(min=0)
    expected = intersection / (a[:, 3:6].prod(1) + b[:, 3:6].prod(1) - intersection)
    torch.testing.assert_close(iou_3d(a, b, aligned=True), expected, atol=1e-9, rtol=0)
    torch.testing.assert_close(iou_3d(a, b).diagonal(), expected, atol=1e-9, rtol=0)


def test_empty_inputs_and_bad_shapes():
    boxes = torch.zeros(3, 7)
    assert bev_iou(torch.zeros(0, 7), boxes).shape == (0, 3)
    assert iou_3d(boxes, torch.zeros(0, 7)).shape == (3, 0)
    with pytest.raises(ValueError, match=r"\[\.\.\., 7\]"):
        bev_iou(torch.zeros(3, 5), boxes)
    with pytest.raises(ValueError, match="aligned"):
        bev_iou(boxes, torch.zeros(2, 7), aligned=True)
