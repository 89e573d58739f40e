import math

import torch
from lrnn.pointcloud.detect.boxes import bev_corners, points_in_boxes


def test_corners_counter_clockwise_and_rotated():
    boxes = torch.tensor([[1.0, 2.0, 0.0, 4.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 4.0, 2.0, 1.0, math.pi / 2]])
    corners = bev_corners(boxes)
    torch.testing.assert_close(corners[0], torch.tensor([[3.0, 3.0], [-1.0, 3.0], [-1.0, 1.0], [3.0, 1.0]]))
    torch.testing.assert_close(corners[1], torch.tensor([[-1.0, 2.0], [-1.0, -2.0], [1.0, -2.0], [1.0, 2.0]]))


def test_points_in_rotated_boxes():
    boxes = torch.tensor([[0.0, 0.0, 0.0, 4.0, 1.0, 2.0, math.pi / 4]])
    points = torch.tensor([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 1.5], [-1.4, -1.4, -0.9]])
    assert points_in_boxes(points, boxes)[:, 0].tolist() == [True, False, False, True]
