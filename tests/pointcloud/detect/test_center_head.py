import math

import pytest
import torch
from lrnn.pointcloud.detect.center_head import CenterHead, focal_loss
from lrnn.pointcloud.detect.center_targets import assign_targets, gaussian_radius

RANGE = (0.0, -8.0, -3.0, 16.0, 8.0, 1.0)
VOXEL = (0.25, 0.25, 0.5)
STRIDE = 2  # 0.5 m pixels, a 32 x 32 map


def make_head(**overrides):
    settings = dict(in_channels=8, num_classes=3, point_cloud_range=RANGE, voxel_size=VOXEL, feature_map_stride=STRIDE)
    return CenterHead(**{**settings, "shared_channels": 16, **overrides})


def separated_boxes(generator, count=6):
    """Boxes on a 4 m lattice of the 16 m x 16 m range (so that their Gaussians and NMS do not interact)."""
    cells = torch.randperm(16, generator=generator)[:count]
    jitter = torch.rand(count, 2, generator=generator) - 0.5
    x = 2.0 + (cells % 4) * 4.0 + jitter[:, 0]
    y = -6.0 + (cells // 4) * 4.0 + jitter[:, 1]
    z = torch.rand(count, generator=generator) * 2 - 2
    size = torch.rand(count, 3, generator=generator) * torch.tensor([2.5, 1.2, 1.0]) + torch.tensor([0.6, 0.5, 1.0])
    heading = torch.rand(count, generator=generator) * 2 * math.pi - math.pi
    labels = torch.randint(0, 3, (count,), generator=generator)
    return torch.stack([x, y, z, *size.T, heading], dim=1), labels


def test_gaussian_radius_matches_openpcdet_formula_and_targets_peak_at_centres():
    # OpenPCDet's gaussian_radius(8, 4, 0.1): min of the three cases
    radius = gaussian_radius(torch.tensor(8.0), torch.tensor(4.0), 0.1)
    r1 = (12 + math.sqrt(144 - 4 * 32 * 0.9 / 1.1)) / 2
    r2 = (24 + math.sqrt(576 - 16 * 0.9 * 32)) / 2
    r3 = (-0.2 * 12 + math.sqrt((0.2 * 12) ** 2 + 4 * 0.4 * 0.9 * 32)) / 2  # 2.4
    assert radius.item() == pytest.approx(min(r1, r2, r3), rel=1e-6)

    boxes, labels = separated_boxes(torch.Generator().manual_seed(0))
    targets = assign_targets([boxes], [labels], 3, (32, 32), RANGE, VOXEL, STRIDE)
    assert targets.mask.sum() == len(boxes)
    assert (targets.heatmap == 1).sum() == len(boxes)
    u = ((boxes[:, 0] - RANGE[0]) / 0.5).floor().long()
    v = ((boxes[:, 1] - RANGE[1]) / 0.5).floor().long()
    assert (targets.heatmap[0, labels, v, u] == 1).all()
    assert targets.index[0, : len(boxes)].tolist() == (v * 32 + u).tolist()


def test_boxes_off_the_map_or_without_size_get_no_target():
    boxes = torch.tensor([[20.0, 0, 0, 1, 1, 1, 0], [5.0, 0, 0, 0, 1, 1, 0], [5.0, 0, 0, 1, 1, 1, 0]])
    targets = assign_targets([boxes], [torch.zeros(3, dtype=torch.long)], 3, (32, 32), RANGE, VOXEL, STRIDE)
    assert targets.mask.sum() == 1
    empty = assign_targets([torch.zeros(0, 7)], [torch.zeros(0, dtype=torch.long)], 3, (32, 32), RANGE, VOXEL, 2)
    assert empty.heatmap.sum() == 0 and not empty.mask.any()


def test_decoding_the_encoded_targets_recovers_the_boxes():
    boxes, labels = separated_boxes(torch.Generator().manual_seed(1))
    targets = assign_targets([boxes], [labels], 3, (32, 32), RANGE, VOXEL, STRIDE)
    predictions = {"heatmap": torch.logit(targets.heatmap.clamp(1e-4, 1 - 1e-4))}
    regression = torch.zeros(1, 8, 32 * 32)
    regression[0, :, targets.index[0, targets.mask[0]]] = targets.regression[0, targets.mask[0]].T
    regression = regression.view(1, 8, 32, 32)
    predictions.update(center=regression[:, :2], center_z=regression[:, 2:3], dim=regression[:, 3:6])
    predictions["rot"] = regression[:, 6:8]
    head = make_head(score_threshold=0.5)
    (detections,) = head.decode(predictions)
    assert len(detections["boxes"]) == len(boxes)
    order = torch.argsort(detections["boxes"][:, 0] * 100 + detections["boxes"][:, 1])
    expected_order = torch.argsort(boxes[:, 0] * 100 + boxes[:, 1])
    torch.testing.assert_close(detections["boxes"][order], boxes[expected_order], atol=1e-5, rtol=1e-5)
    assert detections["labels"][order].tolist() == labels[expected_order].tolist()


def test_focal_loss_on_hand_made_tensors():
    probabilities = torch.tensor([[0.8, 0.3, 0.1], [0.6, 0.2, 0.05]])
    target = torch.tensor([[1.0, 0.5, 0.0], [1.0, 0.0, 0.9]])
    positive = math.log(0.8) * 0.2**2 + math.log(0.6) * 0.4**2
    negative = (
        math.log(0.7) * 0.3**2 * 0.5**4
        + math.log(0.9) * 0.1**2
        + math.log(0.8) * 0.2**2
        + math.log(0.95) * 0.05**2 * 0.1**4
    )
    assert focal_loss(probabilities, target).item() == pytest.approx(-(positive + negative) / 2, rel=1e-6)
    # no positive: the negative sum, undivided
    assert focal_loss(probabilities[:, 1:], target[:, 1:]).item() == pytest.approx(-negative, rel=1e-6)


def test_head_shapes_and_the_heatmap_prior():
    head = make_head(with_iou=True, iou_rectifier=(0.68, 0.71, 0.65))
    maps = head(torch.randn(2, 8, 32, 32))
    assert {name: tuple(value.shape[1:]) for name, value in maps.items()} == {
        "heatmap": (3, 32, 32),
        "center": (2, 32, 32),
        "center_z": (1, 32, 32),
        "dim": (3, 32, 32),
        "rot": (2, 32, 32),
        "iou": (1, 32, 32),
    }
    assert head.branches["heatmap"][-1].bias.tolist() == pytest.approx([-2.19] * 3)
    detections = head.decode(maps)
    assert len(detections) == 2 and detections[0]["boxes"].shape[1] == 7
    with pytest.raises(ValueError, match="iou_rectifier"):
        make_head(iou_rectifier=(0.5, 0.5, 0.5))


@pytest.mark.parametrize("with_iou", [False, True])
def test_loss_decreases_on_one_sample(with_iou):
    torch.manual_seed(0)
    boxes, labels = separated_boxes(torch.Generator().manual_seed(2), count=4)
    head = make_head(with_iou=with_iou)
    features = torch.randn(1, 8, 32, 32)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss, parts = head.loss(head(features), [boxes], [labels])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert set(parts) == {"heatmap", "regression", *(["iou"] if with_iou else [])}
    assert all(math.isfinite(value) for value in losses)
    assert losses[-1] < 0.5 * losses[0]
