"""Global flip, rotation and scaling: points and boxes move together, and the draws follow the generator."""

import math

import pytest
import torch
from lrnn.pointcloud.augment import RandomGlobalTransform, flip_x, rotate_z, scale
from lrnn.pointcloud.detect import points_in_boxes, synthetic_scene

SCENE_RANGE = (0.0, -16.0, -3.0, 32.0, 16.0, 1.0)


@pytest.fixture(scope="module")
def scene():
    return synthetic_scene(1, SCENE_RANGE, num_objects=5, beams=16, azimuth_steps=256)


def test_points_inside_a_box_stay_inside_the_transformed_box(scene):
    inside = points_in_boxes(scene.points, scene.boxes)
    assert inside.any(dim=0).all()  # every box holds points, so the check means something
    transforms = [
        lambda p, b: flip_x(p, b),
        lambda p, b: rotate_z(p, b, 0.7),
        lambda p, b: rotate_z(p, b, -3.0),
        lambda p, b: scale(p, b, 1.05),
        lambda p, b: scale(p, b, 0.9),
    ]
    for transform in transforms:
        points, boxes = transform(scene.points, scene.boxes)
        assert torch.equal(points_in_boxes(points, boxes), inside)
    composed = RandomGlobalTransform(0.5, math.pi / 4, (0.95, 1.05))
    for seed in range(4):
        points, boxes = composed(scene.points, scene.boxes, torch.Generator().manual_seed(seed))
        assert torch.equal(points_in_boxes(points, boxes), inside)
        assert torch.equal(points[:, 3], scene.points[:, 3])  # intensity untouched


def test_each_transform_moves_coordinates_as_stated():
    points = torch.tensor([[1.0, 2.0, 0.5, 0.3]])
    boxes = torch.tensor([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.25]])
    flipped_points, flipped_boxes = flip_x(points, boxes)
    assert flipped_points.tolist() == [[1.0, -2.0, 0.5, pytest.approx(0.3)]]
    assert flipped_boxes[0, [1, 6]].tolist() == [-2.0, -0.25]
    turned_points, turned_boxes = rotate_z(points, boxes, math.pi / 2)  # (1, 2) -> (-2, 1)
    assert torch.allclose(turned_points[0, :3], torch.tensor([-2.0, 1.0, 0.5]), atol=1e-6)
    assert turned_boxes[0, 6].item() == pytest.approx(0.25 + math.pi / 2)
    wrapped = rotate_z(points, boxes, math.pi)[1][0, 6].item()
    assert wrapped == pytest.approx(0.25 - math.pi) and -math.pi <= wrapped < math.pi
    scaled_points, scaled_boxes = scale(points, boxes, 2.0)
    assert scaled_points[0].tolist() == pytest.approx([2.0, 4.0, 1.0, 0.3])
    assert scaled_boxes[0].tolist() == pytest.approx([2.0, 4.0, 1.0, 8.0, 4.0, 3.0, 0.25])
    assert torch.equal(points, torch.tensor([[1.0, 2.0, 0.5, 0.3]]))  # inputs are not changed


def test_same_seed_same_scene_and_draws_in_openpcdets_order(scene):
    transform = RandomGlobalTransform(0.5, math.pi / 4, (0.95, 1.05))
    first = transform(scene.points, scene.boxes, torch.Generator().manual_seed(7))
    again = transform(scene.points, scene.boxes, torch.Generator().manual_seed(7))
    other = transform(scene.points, scene.boxes, torch.Generator().manual_seed(8))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    flips = 0
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        flip, turn, stretch = (torch.rand((), generator=generator).item() for _ in range(3))
        points, boxes = flip_x(scene.points, scene.boxes) if flip < 0.5 else (scene.points, scene.boxes)
        points, boxes = scale(*rotate_z(points, boxes, (2 * turn - 1) * math.pi / 4), 0.95 + 0.1 * stretch)
        expected = transform(scene.points, scene.boxes, torch.Generator().manual_seed(seed))
        assert torch.equal(points, expected[0]) and torch.equal(boxes, expected[1])
        flips += flip < 0.5
    assert 0 < flips < 20


def test_rejects_bad_shapes_and_settings():
    with pytest.raises(ValueError, match=r"points must be \[P, F\]"):
        flip_x(torch.zeros(5, 2), torch.zeros(0, 7))
    with pytest.raises(ValueError, match=r"\[\.\.\., 7\]"):
        rotate_z(torch.zeros(5, 4), torch.zeros(2, 6), 0.1)
    with pytest.raises(ValueError, match="factor must be positive"):
        scale(torch.zeros(5, 4), torch.zeros(0, 7), 0.0)
    with pytest.raises(ValueError, match="flip_probability in"):
        RandomGlobalTransform(1.5, 0.1, (0.95, 1.05))
    with pytest.raises(ValueError, match="scaling must be"):
        RandomGlobalTransform(0.5, 0.1, (0.95,))
