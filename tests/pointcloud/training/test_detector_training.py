import math

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lrnn.pointcloud.data import PointCloudDataModule, collate_scenes
from lrnn.pointcloud.detect import synthetic_scene
from pointcloud_testing import CLASSES, KITTI_RANGE, KITTI_ROOT, SYNTHETIC_RANGE, small_detector, train_steps


def synthetic_batch(seeds=(0, 1)) -> dict:
    scenes = [synthetic_scene(seed, SYNTHETIC_RANGE, num_objects=6, beams=32, azimuth_steps=512) for seed in seeds]
    return {key: [getattr(scene, key) for scene in scenes] for key in ("points", "boxes", "labels")}


def test_a_few_steps_on_synthetic_scenes_reduce_the_loss():
    losses = train_steps(small_detector(), synthetic_batch(), steps=6)
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.skipif(not (KITTI_ROOT / "velodyne").is_dir(), reason=f"no KITTI frames at {KITTI_ROOT}")
def test_a_few_steps_on_the_real_kitti_frames_run_and_reduce_the_loss():
    data = PointCloudDataModule(
        source="kitti", path=str(KITTI_ROOT), point_cloud_range=KITTI_RANGE, batch_size=3, flip_probability=0.0
    )
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    assert sum(len(labels) for labels in batch["labels"]) == 4  # Pedestrian; Car, Cyclist; Car
    detector = small_detector(KITTI_RANGE, voxel_size=(0.8, 0.8, 0.5))
    losses = train_steps(detector, batch, steps=5)
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.7 * losses[0], losses


def quiet_trainer(tmp_path) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="pointcloud", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


@pytest.mark.skipif(not (KITTI_ROOT / "velodyne").is_dir(), reason=f"no KITTI frames at {KITTI_ROOT}")
def test_validation_on_the_kitti_frames_logs_kitti_ap(tmp_path):
    data = PointCloudDataModule(
        source="kitti", path=str(KITTI_ROOT), class_names=CLASSES, point_cloud_range=KITTI_RANGE, batch_size=3
    )
    detector = small_detector(KITTI_RANGE, voxel_size=(0.8, 0.8, 0.5))
    (metrics,) = quiet_trainer(tmp_path).validate(detector, datamodule=data)
    kitti = {key: value for key, value in metrics.items() if key.startswith("val/kitti/")}
    # counted ground truths: the pedestrian (easy, so every level) and one car (moderate, so moderate and hard);
    # the cyclist is fully occluded and the other car 21.6 px tall, counted at no level
    for metric in ("bev", "3d"):
        assert {f"val/kitti/Pedestrian_{metric}_{level}" for level in ("easy", "moderate", "hard")} <= set(kitti)
        assert {f"val/kitti/Car_{metric}_moderate", f"val/kitti/mAP_{metric}_moderate"} <= set(kitti)
    assert "val/kitti/Car_3d_easy" not in kitti and not [key for key in kitti if "Cyclist" in key]
    assert all(0 <= value <= 100 for value in kitti.values()) and "val/bev_map" in metrics
    (without,) = quiet_trainer(tmp_path).validate(small_detector(KITTI_RANGE, (0.8, 0.8, 0.5), kitti_ap=False), data)
    assert not [key for key in without if "kitti" in key]


def test_kitti_ap_scores_the_decoded_detections_by_class_name(tmp_path, monkeypatch):
    """A synthetic scene given KITTI fields: 80 cars the decoder finds exactly score 100, named as pedestrians 0."""
    scene = synthetic_batch(seeds=(0,))
    cars = torch.zeros(80, 7)
    cars[:, 0], cars[:, 1] = 10.0 * (torch.arange(80) % 8), 10.0 * (torch.arange(80) // 8)
    cars[:, 3:6] = torch.tensor([4.0, 2.0, 1.5])
    annotations = {
        "boxes": cars,
        "names": ["Car"] * 80,
        "heights": torch.full((80,), 50.0),
        "occlusion": torch.zeros(80),
        "truncation": torch.zeros(80),
    }
    sample = {"points": scene["points"][0], "boxes": scene["boxes"][0], "labels": scene["labels"][0]}
    loader = torch.utils.data.DataLoader([{**sample, "kitti": annotations}], collate_fn=collate_scenes)
    results = {}
    for label in (0, 1):  # Car, then Pedestrian
        detector = small_detector()
        found = {"boxes": cars, "scores": torch.linspace(0.9, 0.1, 80), "labels": torch.full((80,), label)}
        monkeypatch.setattr(detector.head, "decode", lambda predictions, found=found: [found])
        (results[label],) = quiet_trainer(tmp_path).test(detector, dataloaders=loader)
    assert results[0]["test/kitti/Car_3d_easy"] == pytest.approx(100.0)
    assert results[0]["test/kitti/mAP_bev_hard"] == pytest.approx(100.0)
    assert results[1]["test/kitti/Car_3d_easy"] == 0.0 and "test/kitti/Pedestrian_3d_easy" not in results[1]


def test_fit_and_test_log_the_average_precision_and_draw_bev_png(tmp_path):
    data = PointCloudDataModule(
        class_names=["Car", "Pedestrian", "Cyclist"],
        point_cloud_range=SYNTHETIC_RANGE,
        n_train=4,
        n_val=2,
        n_test=2,
        num_objects=4,
        beams=16,
        azimuth_steps=256,
        batch_size=2,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=CSVLogger(tmp_path, name="pointcloud", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    detector = small_detector()
    trainer.validate(detector, datamodule=data)  # metric states made in inference mode, then updated in fit
    trainer.fit(detector, datamodule=data)
    (metrics,) = trainer.test(detector, datamodule=data)
    assert math.isfinite(metrics["test/loss"]) and 0 <= metrics["test/bev_map"] <= 1
    assert {f"test/bev_ap/{name}" for name in ("Car", "Pedestrian", "Cyclist")} & set(metrics)
    assert not [key for key in metrics if "kitti" in key]  # synthetic scenes carry no KITTI annotations
    picture = tmp_path / "pointcloud" / "bev.png"
    assert picture.is_file() and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scenes_without_objects_or_points_give_finite_losses_and_empty_detections():
    batch = synthetic_batch(seeds=(0,))
    no_objects = {
        "points": batch["points"] * 2,
        "boxes": [torch.zeros(0, 7)] * 2,
        "labels": [torch.zeros(0, dtype=torch.long)] * 2,
    }
    detector = small_detector()
    loss, parts = detector.head.loss(detector(no_objects["points"]), no_objects["boxes"], no_objects["labels"])
    assert math.isfinite(loss.item()) and parts["regression"].item() == 0.0
    loss.backward()

    detector.eval()
    outside = torch.tensor([[100.0, 0.0, 0.0, 0.5]])  # beyond x_max: no voxel
    detections = detector.detect([batch["points"][0], torch.zeros(0, 4), outside])
    assert len(detections) == 3
    for empty in detections[1:]:
        assert empty["boxes"].shape == (0, 7) and empty["scores"].shape == (0,)
    assert all(len(empty["boxes"]) == 0 for empty in detector.detect([torch.zeros(0, 4), outside]))
    with pytest.raises(ValueError, match="non-empty list"):
        detector([])
