import pytest
import torch
from lrnn.pointcloud.detect.boxes import points_in_boxes
from lrnn.pointcloud.detect.synthetic import SENSOR_HEIGHT, SYNTHETIC_CLASSES, synthetic_scene

RANGE = (0.0, -20.0, -3.0, 40.0, 20.0, 1.0)
SMALL_SENSOR = dict(point_cloud_range=RANGE, beams=32, azimuth_steps=720)


def test_same_seed_same_scene_other_seed_other_scene():
    first, again, other = (synthetic_scene(seed, **SMALL_SENSOR) for seed in (3, 3, 4))
    for name in ("points", "boxes", "labels"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.boxes, other.boxes)


def test_every_box_holds_points_and_all_lie_in_range():
    scene = synthetic_scene(0, num_objects=12, min_points=5, **SMALL_SENSOR)
    assert scene.points.dtype == torch.float32 and scene.points.shape[1] == 4
    assert len(scene.boxes) >= 6 and scene.labels.shape == (len(scene.boxes),)
    assert ((scene.labels >= 0) & (scene.labels < len(SYNTHETIC_CLASSES))).all()
    low, high = torch.tensor(RANGE[:3]), torch.tensor(RANGE[3:])
    assert ((scene.points[:, :3] >= low) & (scene.points[:, :3] < high)).all()
    assert ((scene.boxes[:, :3] >= low) & (scene.boxes[:, :3] < high)).all()
    assert ((scene.points[:, 3] >= 0) & (scene.points[:, 3] <= 1)).all()
    # the returns lie on the box surfaces, up to the 1 cm range noise
    slightly_larger = scene.boxes + torch.tensor([0, 0, 0, 0.1, 0.1, 0.1, 0])
    assert (points_in_boxes(scene.points, slightly_larger).sum(dim=0) >= 5).all()
    # boxes stand on the ground; most returns are ground returns
    torch.testing.assert_close(
        scene.boxes[:, 2] - scene.boxes[:, 5] / 2, torch.full((len(scene.boxes),), -SENSOR_HEIGHT)
    )
    on_ground = (scene.points[:, 2] + SENSOR_HEIGHT).abs() < 0.1
    assert on_ground.float().mean() > 0.5


def test_every_return_is_the_first_surface_on_its_ray():
    # occlusion: the open segment from the sensor to a return crosses no box (neither another object nor its own)
    scene = synthetic_scene(1, num_objects=12, range_noise=0.0, **SMALL_SENSOR)
    slightly_smaller = scene.boxes - torch.tensor([0, 0, 0, 0.02, 0.02, 0.02, 0])
    for fraction in (0.3, 0.6, 0.9, 0.99):
        assert not points_in_boxes(scene.points[:, :3] * fraction, slightly_smaller).any()


def test_scene_without_objects_and_bad_arguments():
    scene = synthetic_scene(0, num_objects=0, **SMALL_SENSOR)
    assert scene.boxes.shape == (0, 7) and scene.labels.shape == (0,)
    assert len(scene.points) > 0
    with pytest.raises(ValueError, match="point_cloud_range"):
        synthetic_scene(0, point_cloud_range=(0, 0, 0, 1, 1))
