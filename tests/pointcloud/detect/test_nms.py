import math

import pytest
import torch
from lrnn.pointcloud.detect.nms import rotated_nms


def boxes_of(*rows):
    return torch.tensor([[x, y, 0.0, dx, dy, 1.0, heading] for x, y, dx, dy, heading in rows])


def test_suppresses_overlaps_keeps_the_best_first():
    boxes = boxes_of(
        (0, 0, 4, 2, 0),  # 0
        (0.2, 0, 4, 2, 0),  # 1: IoU 0.9 with 0
        (10, 0, 4, 2, 0),  # 2: alone
        (0, 0, 4, 2, math.pi / 2),  # 3: crossing 0, IoU 4 / 12
        (10.5, 0, 4, 2, math.pi),  # 4: IoU 7 / 9 with 2 (heading pi is the same rectangle)
    )
    scores = torch.tensor([0.5, 0.9, 0.8, 0.7, 0.95])
    assert rotated_nms(boxes, scores, iou_threshold=0.5).tolist() == [4, 1, 3]
    assert rotated_nms(boxes, scores, iou_threshold=0.3).tolist() == [4, 1]
    assert rotated_nms(boxes, scores, iou_threshold=0.95).tolist() == [4, 1, 2, 3, 0]


def test_pre_and_post_max_size():
    boxes = boxes_of((0, 0, 1, 1, 0), (5, 0, 1, 1, 0), (10, 0, 1, 1, 0), (15, 0, 1, 1, 0))
    scores = torch.tensor([0.1, 0.4, 0.3, 0.2])
    assert rotated_nms(boxes, scores, 0.5).tolist() == [1, 2, 3, 0]
    assert rotated_nms(boxes, scores, 0.5, pre_max_size=2).tolist() == [1, 2]
    assert rotated_nms(boxes, scores, 0.5, post_max_size=3).tolist() == [1, 2, 3]


def test_a_suppressed_box_does_not_suppress():
    # 1 overlaps 0 and 2, but 0 and 2 do not overlap: greedy keeps 0 and 2
    boxes = boxes_of((0, 0, 2, 2, 0), (1.2, 0, 2, 2, 0), (2.4, 0, 2, 2, 0))
    assert rotated_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.2).tolist() == [0, 2]


def test_empty_and_bad_shapes():
    assert rotated_nms(torch.zeros(0, 7), torch.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError, match="scores"):
        rotated_nms(torch.zeros(3, 7), torch.zeros(2), 0.5)
