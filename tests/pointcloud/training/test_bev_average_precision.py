import math

import pytest
import torch
from lrnn.pointcloud.detect import BEVAveragePrecision


def box(x, y, dx=4.0, dy=2.0, heading=0.0):
    return [x, y, -1.0, dx, dy, 1.5, heading]


def detections(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes).view(-1, 7), "scores": torch.tensor(scores), "labels": torch.tensor(labels)}


def ap_of(scenes, num_classes=2):
    metric = BEVAveragePrecision(num_classes)
    for predicted, true_boxes, true_labels in scenes:
        metric.update(
            [predicted], [torch.tensor(true_boxes).view(-1, 7)], [torch.tensor(true_labels, dtype=torch.long)]
        )
    return metric.compute().tolist()


def test_perfect_detections_score_one_and_classes_without_targets_are_nan():
    scene = (detections([box(10, 0), box(20, 5)], [0.9, 0.8], [0, 0]), [box(20, 5), box(10, 0)], [0, 0])
    car, pedestrian = ap_of([scene])
    assert car == pytest.approx(1.0) and math.isnan(pedestrian)


def test_a_higher_scored_false_positive_halves_the_precision():
    scene = (detections([box(40, 10), box(10, 0)], [0.9, 0.5], [0, 0]), [box(10, 0)], [0])
    assert ap_of([scene])[0] == pytest.approx(0.5)


def test_missed_targets_cap_the_recall_and_duplicates_are_false_positives():
    # two targets, one found: recall reaches 1/2, so half of the 40 recall levels score precision 1
    scene = (detections([box(10, 0)], [0.9], [0]), [box(10, 0), box(30, 0)], [0, 0])
    assert ap_of([scene])[0] == pytest.approx(0.5)
    duplicate = (detections([box(10, 0), box(10.1, 0)], [0.9, 0.8], [0, 0]), [box(10, 0)], [0])
    assert ap_of([duplicate])[0] == pytest.approx(1.0)  # the duplicate comes after full recall
    ranked_first = (
        detections([box(10.1, 0), box(10, 0), box(30, 0)], [0.9, 0.8, 0.7], [0, 0, 0]),
        [box(10, 0), box(30, 0)],
        [0, 0],
    )
    # ranks: TP (p 1, r 1/2), FP (the second match of the same box), TP (p 2/3, r 1)
    assert ap_of([ranked_first])[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_iou_below_the_threshold_wrong_class_and_no_detections_score_zero():
    shifted = (detections([box(12.5, 0)], [0.9], [0]), [box(10, 0)], [0])  # BEV IoU 1.5 / 6.5 < 0.5
    wrong_class = (detections([box(10, 0)], [0.9], [1]), [box(10, 0)], [0])
    nothing = (detections([], [], []), [box(10, 0)], [0])
    for scene in (shifted, wrong_class, nothing):
        assert ap_of([scene])[0] == 0.0


def test_scenes_accumulate_and_reset_clears():
    hit = (detections([box(10, 0)], [0.9], [0]), [box(10, 0)], [0])
    miss = (detections([box(50, 0)], [0.95], [0]), [box(10, 0)], [0])
    # ranks over both scenes: FP (0.95), TP (0.9, r 1/2), no more: AP = 0.5 * 1/2
    assert ap_of([hit, miss])[0] == pytest.approx(0.25)
    metric = BEVAveragePrecision(1)
    metric.update([hit[0]], [torch.tensor(hit[1])], [torch.tensor(hit[2])])
    metric.reset()
    assert math.isnan(metric.compute().item())  # torchmetrics squeezes a one-class result


def test_rejects_mismatched_lists_and_bad_arguments():
    with pytest.raises(ValueError, match="one entry per scene"):
        BEVAveragePrecision(1).update([], [torch.zeros(0, 7)], [torch.zeros(0)])
    with pytest.raises(ValueError, match="iou_threshold"):
        BEVAveragePrecision(1, iou_threshold=0.0)
