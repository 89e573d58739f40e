import math

import pytest
import torch
from detector_testing import CLASSES, KITTI_RANGE, KITTI_ROOT, SYNTHETIC_RANGE
from lrnn.pointcloud.data import PointCloudDataModule, augment_scene, collate_scenes, crop_to_range
from lrnn.pointcloud.detect import points_in_boxes, synthetic_scene

needs_kitti = pytest.mark.skipif(not (KITTI_ROOT / "velodyne").is_dir(), reason=f"no KITTI frames at {KITTI_ROOT}")


def synthetic_module(**options) -> PointCloudDataModule:
    settings = {"point_cloud_range": SYNTHETIC_RANGE, "n_train": 4, "n_val": 2, "n_test": 2, "num_objects": 5}
    settings.update(beams=16, azimuth_steps=256, class_names=CLASSES, batch_size=2, **options)
    module = PointCloudDataModule(**settings)
    module.setup("fit")
    return module


def test_synthetic_splits_are_seeded_distinct_and_cropped():
    first, again = synthetic_module(), synthetic_module()
    assert {split: len(dataset) for split, dataset in first.splits.items()} == {"train": 4, "val": 2, "test": 2}
    val, val_again = first.splits["val"][0], again.splits["val"][0]
    assert torch.equal(val["points"], val_again["points"]) and torch.equal(val["boxes"], val_again["boxes"])
    assert not torch.equal(val["points"], first.splits["test"][0]["points"])
    low, high = torch.tensor(SYNTHETIC_RANGE[:3]), torch.tensor(SYNTHETIC_RANGE[3:])
    assert ((val["points"][:, :3] >= low) & (val["points"][:, :3] < high)).all()


def first_training_batch(seed: int) -> dict:
    torch.manual_seed(0)  # the loader's shuffle
    return next(iter(synthetic_module(seed=seed).train_dataloader()))


def test_training_batches_are_lists_and_augmentation_is_seeded():
    batch, again, other_seed = first_training_batch(3), first_training_batch(3), first_training_batch(4)
    assert set(batch) == {"points", "boxes", "labels"} and len(batch["points"]) == 2
    assert all(torch.equal(a, b) for a, b in zip(batch["points"], again["points"], strict=True))
    assert not torch.equal(batch["points"][0], other_seed["points"][0])
    scenes = synthetic_module().splits["train"]
    assert not torch.equal(scenes[0]["points"], scenes[0]["points"])  # a fresh draw on every visit


def test_augmentation_moves_points_and_boxes_together():
    scene = synthetic_scene(1, SYNTHETIC_RANGE, num_objects=4, beams=16, azimuth_steps=256)
    inside = points_in_boxes(scene.points, scene.boxes)
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        points, boxes = augment_scene(scene.points, scene.boxes, generator, 0.5, math.pi / 4, (0.9, 1.1))
        assert torch.equal(points_in_boxes(points, boxes.float()), inside)
        assert torch.allclose(boxes[:, 3:6] / scene.boxes[:, 3:6], boxes[:1, 3:4] / scene.boxes[:1, 3:4])


def test_crop_keeps_points_in_range_and_boxes_by_their_centre():
    points = torch.tensor([[1.0, 0.0, 0.0, 0.5], [-1.0, 0.0, 0.0, 0.5], [1.0, 0.0, 5.0, 0.5]])
    boxes = torch.tensor([[1.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0], [40.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]])
    kept_points, kept_boxes, kept_labels = crop_to_range(points, boxes, torch.tensor([0, 2]), SYNTHETIC_RANGE)
    assert torch.equal(kept_points, points[:1]) and torch.equal(kept_boxes, boxes[:1]) and kept_labels.tolist() == [0]


def test_collate_keeps_one_tensor_per_scene():
    samples = [
        {"points": torch.zeros(n, 4), "boxes": torch.zeros(n % 2, 7), "labels": torch.zeros(n % 2)} for n in (3, 4)
    ]
    batch = collate_scenes(samples)
    assert [len(points) for points in batch["points"]] == [3, 4] and [len(b) for b in batch["boxes"]] == [1, 0]


@needs_kitti
def test_kitti_frames_keep_the_named_classes_in_the_lidar_frame():
    module = PointCloudDataModule(source="kitti", path=str(KITTI_ROOT), point_cloud_range=KITTI_RANGE, batch_size=3)
    module.setup("test")
    assert len(module.splits["test"]) == 3  # every velodyne/*.bin
    frame = module.splits["test"][1]  # Truck (dropped), Car, Cyclist
    assert frame["points"].shape[1] == 4 and frame["labels"].tolist() == [0, 2]
    assert frame["boxes"][0, 0].item() == pytest.approx(58.8, abs=0.1)
    listed = PointCloudDataModule(source="kitti", path=str(KITTI_ROOT), test_frames=["000002"])
    listed.setup("test")
    assert len(listed.splits["test"]) == 1 and listed.splits["test"][0]["labels"].tolist() == [0]  # Misc dropped


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="source must be"):
        PointCloudDataModule(source="waymo")
    with pytest.raises(ValueError, match="needs path"):
        PointCloudDataModule(source="kitti")
    with pytest.raises(ValueError, match="synthetic scenes have the classes"):
        PointCloudDataModule(class_names=["Car"])
    with pytest.raises(ValueError, match="no KITTI frames"):
        PointCloudDataModule(source="kitti", path="/nonexistent").setup("fit")
