"""KittiAP: KITTI's official R40 average precision, on hand-made scenes whose AP can be worked out by hand."""

import math

import pytest
import torch
from lrnn.pointcloud.detect import bev_iou
from lrnn.pointcloud.detect.kitti_ap import KittiAP, get_thresholds

N = 80  # with 80 counted ground truths get_thresholds keeps 41 scores, so a perfect ranking gives exactly 100


def cars(n: int, start: float = 0.0) -> torch.Tensor:
    """``n`` cars 4 x 2 x 1.5 m, 10 m apart along x."""
    boxes = torch.zeros(n, 7, dtype=torch.float64)
    boxes[:, 0] = start + 10.0 * torch.arange(n, dtype=torch.float64)
    boxes[:, 3:6] = torch.tensor([4.0, 2.0, 1.5], dtype=torch.float64)
    return boxes


def target(boxes: torch.Tensor, names=None, heights=None, occlusion=None, truncation=None) -> dict:
    m = boxes.shape[0]
    return {
        "boxes": boxes,
        "names": names or ["Car"] * m,
        "heights": torch.full((m,), 50.0) if heights is None else torch.as_tensor(heights, dtype=torch.float64),
        "occlusion": torch.zeros(m) if occlusion is None else torch.as_tensor(occlusion),
        "truncation": torch.zeros(m) if truncation is None else torch.as_tensor(truncation),
    }


def pred(boxes: torch.Tensor, scores=None, heights=None, labels=None) -> dict:
    k = boxes.shape[0]
    return {
        "boxes": boxes,
        "labels": labels if labels is not None else torch.zeros(k, dtype=torch.long),
        "scores": torch.linspace(0.9, 0.1, k) if scores is None else torch.as_tensor(scores),
        "heights": heights,
    }


def car_ap(metric: KittiAP, level: str = "easy") -> tuple[float, float]:
    out = metric.compute()
    return out[f"Car/bev/{level}"], out[f"Car/3d/{level}"]


def test_get_thresholds_keeps_41_of_80_and_40_of_40():
    assert len(get_thresholds(torch.linspace(1, 0, 80).double().numpy(), 80)) == 41
    assert len(get_thresholds(torch.linspace(1, 0, 40).double().numpy(), 40)) == 40


def test_perfect_detections_give_100_and_absent_classes_nan():
    boxes = cars(N)
    metric = KittiAP()
    metric.update([pred(boxes)], [target(boxes)])
    out = metric.compute()
    assert set(out) == {f"{c}/{m}/{d}" for c in ("Car", "Pedestrian", "Cyclist") for m in ("bev", "3d")
                        for d in ("easy", "moderate", "hard")}  # fmt: skip
    for level in ("easy", "moderate", "hard"):
        assert car_ap(metric, level) == pytest.approx((100.0, 100.0))
    assert math.isnan(out["Pedestrian/3d/moderate"]) and math.isnan(out["Cyclist/bev/easy"])


def test_one_false_positive_above_everything():
    # Every threshold then sees tp true positives and the 1 false positive; precision (tp / (tp + 1)) grows with
    # tp, so the interpolated precision is 80 / 81 at all 40 recall positions: AP = 100 * 80 / 81.
    boxes = cars(N)
    dets = torch.cat([boxes, cars(1, start=-50.0)])
    scores = torch.cat([torch.linspace(0.9, 0.1, N), torch.tensor([0.99])])
    metric = KittiAP()
    metric.update([pred(dets, scores)], [target(boxes)])
    assert car_ap(metric) == pytest.approx((100 * 80 / 81, 100 * 80 / 81))


def test_false_positive_midway_hand_computed():
    # 80 true positives; a false positive ranked just after the 40th. Thresholds are the true positives ranked
    # 1, 2, 4, 6, ..., 80; those ranked <= 40 (thresholds 0..20) have precision 1, the rest r / (r + 1), so the
    # interpolated precision is 1 at positions 1..20 and 80 / 81 at 21..40: AP = 100 * (20 + 20 * 80 / 81) / 40.
    boxes = cars(N)
    tp_scores = torch.linspace(0.9, 0.1, N).double()
    dets = torch.cat([boxes, cars(1, start=-50.0)])
    scores = torch.cat([tp_scores, ((tp_scores[39] + tp_scores[40]) / 2).reshape(1)])
    metric = KittiAP()
    metric.update([pred(dets, scores)], [target(boxes)])
    expected = 100 * (20 + 20 * 80 / 81) / 40
    assert car_ap(metric) == pytest.approx((expected, expected))


def test_hard_only_ground_truth_is_ignored_for_easy():
    boxes = cars(N)
    hard = cars(40, start=-1000.0)  # occlusion 2, 30 px: Hard only
    gt = target(torch.cat([boxes, hard]), heights=[50.0] * N + [30.0] * 40, occlusion=[0] * N + [2] * 40)
    dets = torch.cat([boxes, hard])
    scores = torch.cat([torch.linspace(0.9, 0.1, N), torch.linspace(0.99, 0.95, 40)])
    metric = KittiAP()
    metric.update([pred(dets, scores)], [gt])  # detection heights unknown: never ignored by height
    # Easy and Moderate: the matched detections are not false positives (else 40 false positives above all true
    # ones); Hard: 120 true positives.
    for level in ("easy", "moderate", "hard"):
        assert car_ap(metric, level) == pytest.approx((100.0, 100.0))
    # Left undetected, they are no misses for Easy / Moderate, but misses for Hard (recall at most 2 / 3).
    metric = KittiAP()
    metric.update([pred(boxes)], [gt])
    assert car_ap(metric, "easy") == pytest.approx((100.0, 100.0))
    assert car_ap(metric, "moderate") == pytest.approx((100.0, 100.0))
    assert car_ap(metric, "hard")[0] < 70.0


def test_van_and_low_detection_are_ignored():
    boxes = cars(N)
    van = cars(1, start=-50.0)
    low = cars(1, start=-100.0)
    dets = torch.cat([boxes, van, low])
    scores = torch.cat([torch.linspace(0.9, 0.1, N), torch.tensor([0.99, 0.98])])
    heights = torch.cat([torch.full((N,), 50.0), torch.tensor([50.0, 20.0])])  # 20 px: under every minimum
    metric = KittiAP()
    metric.update([pred(dets, scores, heights)], [target(torch.cat([boxes, van]), names=["Car"] * N + ["Van"])])
    assert car_ap(metric, "moderate") == pytest.approx((100.0, 100.0))
    # The same detections with a 30 px low one: ignored for Easy (< 40 px), a false positive for Moderate.
    heights[-1] = 30.0
    metric = KittiAP()
    metric.update([pred(dets, scores, heights)], [target(torch.cat([boxes, van]), names=["Car"] * N + ["Van"])])
    assert car_ap(metric, "easy") == pytest.approx((100.0, 100.0))
    assert car_ap(metric, "moderate") == pytest.approx((100 * 80 / 81,) * 2)


def test_dont_care_region_makes_detection_ignored():
    boxes = cars(N)
    stray = cars(1, start=-50.0)
    dets = torch.cat([boxes, stray])
    scores = torch.cat([torch.linspace(0.9, 0.1, N), torch.tensor([0.99])])
    region = stray.clone()
    region[:, 3:6] *= 3  # a DontCare region around the stray detection
    gt = target(torch.cat([boxes, region]), names=["Car"] * N + ["DontCare"], heights=[50.0] * (N + 1))
    metric = KittiAP()
    metric.update([pred(dets, scores)], [gt])
    assert car_ap(metric) == pytest.approx((100.0, 100.0))
    # KITTI's dummy DontCare box (dimensions -1, far away) claims nothing: the stray one is a false positive.
    gt["boxes"][-1] = torch.tensor([-1000.0, -1000.0, -1000.0, -1.0, -1.0, -1.0, -10.0])
    metric = KittiAP()
    metric.update([pred(dets, scores)], [gt])
    assert car_ap(metric) == pytest.approx((100 * 80 / 81,) * 2)


@pytest.mark.parametrize("iou, expected", [(0.69, 0.0), (0.71, 100.0)])
def test_car_iou_just_below_or_above_0_7(iou, expected):
    boxes = cars(N)
    shift = 4.0 * (1 - iou) / (1 + iou)  # 4 m long boxes slid along x: IoU (4 - s) / (4 + s), in BEV and 3D
    dets = boxes.clone()
    dets[:, 0] += shift
    assert bev_iou(dets[:1], boxes[:1]).item() == pytest.approx(iou, abs=1e-6)
    metric = KittiAP()
    metric.update([pred(dets)], [target(boxes)])
    assert car_ap(metric) == pytest.approx((expected, expected))


def test_frames_accumulate_like_one_combined_computation():
    torch.manual_seed(0)
    frames_pred, frames_gt, all_gt, all_pred = [], [], [], []
    for f in range(4):
        gt_boxes = cars(25, start=1000.0 * f)
        dets = gt_boxes.clone()
        dets[:, 0] += torch.rand(25, dtype=torch.float64) * 1.2  # some match, some do not
        dets = torch.cat([dets, cars(3, start=1000.0 * f - 100.0)])  # plus false positives
        scores = torch.rand(28, dtype=torch.float64)
        heights = torch.rand(25) * 60 + 10
        occlusion = torch.randint(0, 3, (25,))
        frames_gt.append(target(gt_boxes, heights=heights, occlusion=occlusion))
        frames_pred.append(pred(dets, scores))
        all_gt.append(frames_gt[-1])
        all_pred.append(frames_pred[-1])
    merged_gt = {
        "boxes": torch.cat([g["boxes"] for g in all_gt]),
        "names": sum((g["names"] for g in all_gt), []),
        **{k: torch.cat([g[k] for g in all_gt]) for k in ("heights", "occlusion", "truncation")},
    }
    merged_pred = {k: torch.cat([p[k] for p in all_pred]) for k in ("boxes", "labels", "scores")}
    merged_pred["heights"] = None
    split = KittiAP()
    split.update(frames_pred[:1], frames_gt[:1])
    split.update(frames_pred[1:], frames_gt[1:])
    combined = KittiAP()
    combined.update([merged_pred], [merged_gt])  # the frames lie 1 km apart, so one frame holding them all is equal
    got, want = split.compute(), combined.compute()
    assert 0 < got["Car/3d/moderate"] < 100
    for key, value in want.items():
        assert got[key] == pytest.approx(value, nan_ok=True), key


def test_reset_clears_and_names_as_labels():
    boxes = cars(N)
    metric = KittiAP(classes=("Car",))
    metric.update([pred(boxes, labels=["Pedestrian"] * N)], [target(boxes)])
    assert car_ap(metric) == pytest.approx((0.0, 0.0))
    metric.reset()
    assert metric.gt_boxes == [] and metric.det_scores == []
    metric.update([pred(boxes, labels=["car"] * N)], [target(boxes)])
    assert car_ap(metric) == pytest.approx((100.0, 100.0))
