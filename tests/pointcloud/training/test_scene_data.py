import pytest
import torch
from lrnn.pointcloud.data import PointCloudDataModule, collate_scenes, crop_to_range, kitti_difficulty
from lrnn.pointcloud.detect import bev_intersection_area
from pointcloud_testing import CLASSES, KITTI_RANGE, KITTI_ROOT, SYNTHETIC_RANGE

needs_kitti = pytest.mark.skipif(not (KITTI_ROOT / "velodyne").is_dir(), reason=f"no KITTI frames at {KITTI_ROOT}")


def synthetic_module(stage: str = "fit", **options) -> PointCloudDataModule:
    settings = {"point_cloud_range": SYNTHETIC_RANGE, "n_train": 4, "n_val": 2, "n_test": 2, "num_objects": 5}
    settings.update(beams=16, azimuth_steps=256, class_names=CLASSES, batch_size=2)
    module = PointCloudDataModule(**{**settings, **options})
    module.setup(stage)
    return module


def test_synthetic_splits_are_seeded_distinct_and_cropped():
    first, again = synthetic_module(), synthetic_module()
    assert {split: len(dataset) for split, dataset in first.splits.items()} == {"train": 4, "val": 2, "test": 2}
    val, val_again = first.splits["val"][0], again.splits["val"][0]
    assert torch.equal(val["points"], val_again["points"]) and torch.equal(val["boxes"], val_again["boxes"])
    assert not torch.equal(val["points"], first.splits["test"][0]["points"])
    low, high = torch.tensor(SYNTHETIC_RANGE[:3]), torch.tensor(SYNTHETIC_RANGE[3:])
    assert ((val["points"][:, :3] >= low) & (val["points"][:, :3] < high)).all()


def first_training_batch(seed: int, **options) -> dict:
    torch.manual_seed(0)  # the loader's shuffle
    return next(iter(synthetic_module(seed=seed, **options).train_dataloader()))


def test_training_batches_are_lists_and_augmentation_is_seeded():
    batch, again, other_seed = first_training_batch(3), first_training_batch(3), first_training_batch(4)
    assert set(batch) == {"points", "boxes", "labels"} and len(batch["points"]) == 2
    assert all(torch.equal(a, b) for a, b in zip(batch["points"], again["points"], strict=True))
    assert not torch.equal(batch["points"][0], other_seed["points"][0])
    scenes = synthetic_module().splits["train"]
    assert not torch.equal(scenes[0]["points"], scenes[0]["points"])  # a fresh draw on every visit


def test_ground_truth_sampling_pastes_objects_into_training_scenes_only_and_is_seeded(tmp_path):
    options = {"gt_sampling": {"Car": 4, "Pedestrian": 3}, "gt_min_points": {"Car": 5}, "flip_probability": 0.0}
    plain, sampled = synthetic_module(flip_probability=0.0), synthetic_module(**options)
    for index in range(2):
        before, after = plain.splits["train"][index], sampled.splits["train"][index]
        assert len(after["boxes"]) > len(before["boxes"]) and len(after["boxes"]) == len(after["labels"])
        overlap = bev_intersection_area(after["boxes"], after["boxes"]).fill_diagonal_(0)
        assert (overlap == 0).all()
    assert torch.equal(plain.splits["val"][0]["points"], sampled.splits["val"][0]["points"])  # val is not sampled
    batch, again = first_training_batch(3, **options), first_training_batch(3, **options)
    assert all(torch.equal(a, b) for a, b in zip(batch["boxes"], again["boxes"], strict=True))
    assert not synthetic_module(stage="test", **options).splits["train"].gt_sampler  # built for fitting only

    cached = tmp_path / "gt_database.pt"
    written = synthetic_module(gt_database=str(cached), **options)
    assert cached.is_file()
    database = written.splits["train"].gt_sampler.database
    reread = synthetic_module(gt_database=str(cached), n_train=1, **options)  # read, not rebuilt from one scene
    assert torch.equal(reread.splits["train"].gt_sampler.database.points, database.points)


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


@needs_kitti
def test_kitti_evaluation_samples_carry_the_annotations_kitti_ap_needs():
    module = PointCloudDataModule(source="kitti", path=str(KITTI_ROOT), point_cloud_range=KITTI_RANGE, batch_size=3)
    module.setup("fit")
    assert "kitti" not in module.splits["train"][1]
    annotations = module.splits["val"][1]["kitti"]  # every object but DontCare, uncropped, with the 2D fields
    assert annotations["names"] == ["Truck", "Car", "Cyclist"] and annotations["boxes"].shape == (3, 7)
    assert annotations["heights"].tolist() == pytest.approx([189.25 - 156.40, 203.12 - 181.54, 193.93 - 163.95])
    assert annotations["occlusion"].tolist() == [0, 0, 3] and annotations["truncation"].tolist() == [0, 0, 0]
    batch = next(iter(module.val_dataloader()))
    assert [len(a["names"]) for a in batch["kitti"]] == [1, 3, 2]


@needs_kitti
def test_ground_truth_sampling_on_the_kitti_frames_and_lions_filters():
    lion = {"gt_sampling": {"Car": 15, "Pedestrian": 10, "Cyclist": 10}, "gt_min_points": {"Car": 5}}
    module = PointCloudDataModule(source="kitti", path=str(KITTI_ROOT), point_cloud_range=KITTI_RANGE, **lion)
    module.setup("fit")
    plain = PointCloudDataModule(source="kitti", path=str(KITTI_ROOT), point_cloud_range=KITTI_RANGE)
    plain.setup("fit")
    assert len(module.splits["train"][0]["boxes"]) > len(plain.splits["train"][0]["boxes"])
    # the three frames' only cyclist is fully occluded: no difficulty, so LION's filter leaves none to sample
    strict = PointCloudDataModule(
        source="kitti", path=str(KITTI_ROOT), point_cloud_range=KITTI_RANGE, gt_skip_difficulties=[-1], **lion
    )
    with pytest.raises(ValueError, match="no 'Cyclist' object to sample: 1 of that class"):
        strict.setup("fit")


def test_kitti_difficulty_is_the_easiest_level_met():
    heights = torch.tensor([41.0, 40.0, 30.0, 30.0, 30.0, 20.0])
    occlusion = torch.tensor([0, 0, 1, 2, 3, 0])
    truncation = torch.tensor([0.1, 0.1, 0.2, 0.4, 0.0, 0.0])
    assert kitti_difficulty(heights, occlusion, truncation).tolist() == [0, 1, 1, 2, -1, -1]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="source must be"):
        PointCloudDataModule(source="waymo")
    with pytest.raises(ValueError, match="needs path"):
        PointCloudDataModule(source="kitti")
    with pytest.raises(ValueError, match="synthetic scenes have the classes"):
        PointCloudDataModule(class_names=["Car"])
    with pytest.raises(ValueError, match="no KITTI frames"):
        PointCloudDataModule(source="kitti", path="/nonexistent").setup("fit")
    with pytest.raises(ValueError, match=r"gt_sampling names classes \['Van'\]"):
        PointCloudDataModule(gt_sampling={"Car": 5, "Van": 2})
    with pytest.raises(ValueError, match="gt_min_points is given but gt_sampling is None"):
        PointCloudDataModule(gt_min_points={"Car": 5})
    with pytest.raises(ValueError, match="flip_probability in"):
        PointCloudDataModule(flip_probability=2.0)
