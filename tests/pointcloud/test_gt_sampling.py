"""Ground-truth database and sampling: per-box point counts, no BEV overlap after pasting, pasted boxes hold only
their own object's points, filters, seeding and errors."""

from pathlib import Path

import pytest
import torch
from lrnn.pointcloud.augment import GTDatabase, GTSampler, build_gt_database
from lrnn.pointcloud.data import load_kitti
from lrnn.pointcloud.detect import bev_intersection_area, points_in_boxes, synthetic_scene

KITTI_ROOT = Path(__file__).parents[2] / ".." / "shared" / "data" / "kitti" / "training"
SCENE_RANGE = (0.0, -16.0, -3.0, 32.0, 16.0, 1.0)
CLASSES = ("Car", "Pedestrian", "Cyclist")


def points_in(box: list[float], count: int, seed: int) -> torch.Tensor:
    """``count`` points ``[count, 4]`` strictly inside ``box`` (x, y, z, intensity)."""
    generator = torch.Generator().manual_seed(seed)
    box = torch.tensor(box)
    local = (torch.rand(count, 3, generator=generator) - 0.5) * 0.9 * box[3:6]
    cos, sin = box[6].cos(), box[6].sin()
    xy = torch.stack([local[:, 0] * cos - local[:, 1] * sin, local[:, 0] * sin + local[:, 1] * cos], dim=1)
    xyz = torch.cat([xy, local[:, 2:]], dim=1) + box[:3]
    return torch.cat([xyz, torch.rand(count, 1, generator=generator)], dim=1)


CAR = [5.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.3]
PEDESTRIAN = [-5.0, 3.0, -1.0, 0.8, 0.6, 1.7, -1.0]
MISC = [10.0, 8.0, -1.0, 1.0, 1.0, 1.0, 0.0]


def hand_made_scene() -> tuple:
    background = torch.cat([torch.rand(50, 2) * 10 + torch.tensor([20.0, 20.0]), torch.zeros(50, 2)], dim=1)
    points = torch.cat([points_in(CAR, 10, 0), points_in(PEDESTRIAN, 3, 1), points_in(MISC, 2, 2), background])
    boxes = torch.tensor([CAR, PEDESTRIAN, MISC])
    return points, boxes, ["Car", "Pedestrian", "Misc"], torch.tensor([0, 2, -1])


def test_database_keeps_each_boxs_points_relative_to_its_centre():
    points, boxes, names, difficulty = hand_made_scene()
    database = build_gt_database([(points, boxes, names, difficulty)], class_names=["Car", "Pedestrian"])
    assert database.names == ("Car", "Pedestrian") and database.num_points.tolist() == [10, 3]
    assert database.difficulty.tolist() == [0, 2] and database.scenes.tolist() == [0, 0]
    assert torch.equal(database.boxes, boxes[:2])
    restored = database.object_points(0).clone()
    restored[:, :3] += boxes[0, :3]
    assert torch.allclose(restored, points[:10], atol=1e-6)
    everything = build_gt_database([(points, boxes, names, None)] * 2)
    assert len(everything) == 6 and everything.num_points.tolist() == [10, 3, 2] * 2
    assert everything.difficulty.tolist() == [-1] * 6 and everything.scenes.tolist() == [0, 0, 0, 1, 1, 1]


def synthetic_database(scenes: int = 6) -> GTDatabase:
    loaded = [synthetic_scene(seed, SCENE_RANGE, num_objects=8, beams=16, azimuth_steps=256) for seed in range(scenes)]
    return build_gt_database([(s.points, s.boxes, [CLASSES[k] for k in s.labels.tolist()], None) for s in loaded])


@pytest.fixture(scope="module")
def database() -> GTDatabase:
    return synthetic_database()


def test_database_counts_match_points_in_boxes_on_synthetic_scenes(database):
    scene = synthetic_scene(0, SCENE_RANGE, num_objects=8, beams=16, azimuth_steps=256)
    first = database.scenes == 0
    assert database.num_points[first].tolist() == points_in_boxes(scene.points, scene.boxes).sum(dim=0).tolist()


@pytest.mark.skipif(not (KITTI_ROOT / "velodyne").is_dir(), reason=f"no KITTI frames at {KITTI_ROOT}")
def test_database_of_the_real_kitti_frames_counts_points_and_knows_difficulties(tmp_path):
    scenes = [load_kitti(KITTI_ROOT, ["000000", "000001", "000002"], index) for index in range(3)]
    database = build_gt_database([(s.points, s.boxes, s.names, s.difficulty) for s in scenes], CLASSES)
    assert database.names == ("Pedestrian", "Car", "Cyclist", "Car")  # Truck and Misc left out
    # difficulty: the pedestrian is easy; the far car is 21.6 px tall and the cyclist fully occluded (none); the
    # last car is 33 px tall (moderate)
    assert database.difficulty.tolist() == [0, -1, -1, 1]
    expected = [points_in_boxes(s.points, s.boxes).sum(dim=0) for s in scenes]
    assert database.num_points.tolist() == [expected[0][0], expected[1][1], expected[1][2], expected[2][1]]
    assert database.num_points.min() > 0
    database.save(tmp_path / "db.pt")
    loaded = GTDatabase.load(tmp_path / "db.pt")
    assert loaded.names == database.names and torch.equal(loaded.points, database.points)
    assert torch.equal(loaded.offsets, database.offsets) and list(tmp_path.iterdir()) == [tmp_path / "db.pt"]


def pasted_object_points(database: GTDatabase, box: torch.Tensor) -> torch.Tensor:
    """The points of the database object whose box is ``box``, moved back to where it was."""
    (index,) = (database.boxes == box).all(dim=1).nonzero().flatten().tolist()
    points = database.object_points(index)
    return torch.cat([points[:, :3] + box[:3], points[:, 3:]], dim=1)


def test_pasted_objects_overlap_nothing_and_their_boxes_hold_only_their_points(database):
    scene = synthetic_scene(100, SCENE_RANGE, num_objects=8, beams=16, azimuth_steps=256)
    names = [CLASSES[k] for k in scene.labels.tolist()]
    sampler = GTSampler(database, {"Car": 6, "Pedestrian": 4, "Cyclist": 4}, {"Car": 5, "Pedestrian": 5})
    pasted_total = 0
    for seed in range(4):
        points, boxes, new_names = sampler(scene.points, scene.boxes, names, torch.Generator().manual_seed(seed))
        num_scene, num_pasted = len(scene.boxes), len(boxes) - len(scene.boxes)
        assert torch.equal(boxes[:num_scene], scene.boxes) and new_names[:num_scene] == names
        assert len(new_names) == len(boxes)
        pasted_total += num_pasted
        overlap = bev_intersection_area(boxes, boxes)
        overlap.fill_diagonal_(0)
        assert (overlap[num_scene:] == 0).all() and (overlap[:, num_scene:] == 0).all()
        inside = points_in_boxes(points, boxes[num_scene:])
        for column, box in enumerate(boxes[num_scene:]):
            own = pasted_object_points(database, box)
            found = points[inside[:, column]]
            assert (found[:, None, :] == own[None, :, :]).all(dim=-1).any(dim=1).all()
            assert len(own) >= (5 if new_names[num_scene + column] != "Cyclist" else 0)
        outside = ~points_in_boxes(scene.points, boxes[num_scene:]).any(dim=1)
        kept_scene_points = int(outside.sum())
        pasted_points = sum(len(pasted_object_points(database, box)) for box in boxes[num_scene:])
        assert len(points) == pasted_points + kept_scene_points
        assert torch.equal(points[pasted_points:], scene.points[outside])
    assert pasted_total > 0


def test_filters_collisions_and_the_seed_decide_what_is_pasted():
    car_far = [30.0, -10.0, -1.0, 4.0, 2.0, 1.5, 0.0]
    scenes = [
        (points_in(CAR, 3, 0), torch.tensor([CAR]), ["Car"], torch.tensor([0])),  # too few points
        (points_in(CAR, 8, 1), torch.tensor([CAR]), ["Car"], torch.tensor([-1])),  # no difficulty
        (points_in(car_far, 8, 2), torch.tensor([car_far]), ["Car"], torch.tensor([1])),  # the eligible one
    ]
    database = build_gt_database(scenes)
    sampler = GTSampler(database, {"Car": 5}, {"Car": 5}, skip_difficulties=[-1])
    empty = (torch.zeros(0, 4), torch.zeros(0, 7), [])
    for seed in range(5):
        _, boxes, names = sampler(*empty, torch.Generator().manual_seed(seed))
        assert boxes.tolist() == [car_far] and names == ["Car"]
    # a scene box of any class over the eligible car blocks it
    van = torch.tensor([[31.0, -10.5, -1.0, 5.0, 2.0, 2.0, 0.5]])
    points, boxes, names = sampler(points_in(van[0].tolist(), 20, 3), van, ["Van"], torch.Generator())
    assert torch.equal(boxes, van) and names == ["Van"] and len(points) == 20
    # two drawn objects that overlap each other are both dropped
    twins = build_gt_database([scenes[2], scenes[2]])
    assert len(GTSampler(twins, {"Car": 2})(*empty, torch.Generator())[1]) == 0


def test_same_seed_same_scene(database):
    scene = synthetic_scene(100, SCENE_RANGE, num_objects=8, beams=16, azimuth_steps=256)
    names = [CLASSES[k] for k in scene.labels.tolist()]
    sampler = GTSampler(database, {"Car": 6, "Pedestrian": 4, "Cyclist": 4})
    first, again, other = (
        sampler(scene.points, scene.boxes, names, torch.Generator().manual_seed(seed)) for seed in (3, 3, 4)
    )
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1]) and first[2] == again[2]
    assert not torch.equal(first[1], other[1])


def test_rejects_bad_input(database):
    with pytest.raises(ValueError, match="no 'Truck' object to sample"):
        GTSampler(database, {"Truck": 2})
    with pytest.raises(ValueError, match="no 'Car' object to sample: .* none with >= 100000 points"):
        GTSampler(database, {"Car": 2}, {"Car": 100000})
    with pytest.raises(ValueError, match="counts must be >= 0"):
        GTSampler(database, {"Car": -1})
    with pytest.raises(ValueError, match="min_points names classes"):
        GTSampler(database, {"Car": 1}, {"Cyclist": 5})
    sampler = GTSampler(database, {"Car": 1})
    with pytest.raises(ValueError, match="points have 3 features, the database's objects 4"):
        sampler(torch.zeros(5, 3), torch.zeros(0, 7), [], torch.Generator())
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 7\]"):
        sampler(torch.zeros(5, 4), torch.zeros(2, 6), ["Car", "Car"], torch.Generator())
    with pytest.raises(ValueError, match="with M names"):
        sampler(torch.zeros(5, 4), torch.zeros(2, 7), ["Car"], torch.Generator())
    with pytest.raises(ValueError, match="at least one scene"):
        build_gt_database([])
    with pytest.raises(ValueError, match="must describe its 1 boxes"):
        build_gt_database([(torch.zeros(5, 4), torch.zeros(1, 7), ["Car", "Car"], None)])
    with pytest.raises(ValueError, match="scene 1 has 3 point features"):
        build_gt_database(
            [(torch.zeros(5, 4), torch.zeros(0, 7), [], None), (torch.zeros(5, 3), torch.zeros(0, 7), [], None)]
        )
