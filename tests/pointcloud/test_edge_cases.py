"""Issue 7's edge cases: empty clouds, clouds wholly outside the range, frames without objects, bad calibration.

Behaviour: a scene with no point inside the range is a blank BEV map, trains like any other and gets no detection
(a batch of only such scenes skips the 3D backbone); a scene without objects trains on the heatmap loss alone; a
calibration matrix of the wrong shape, or with something other than numbers, raises ``ValueError`` naming it.
"""

import math

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lrnn.pointcloud.data import PointCloudDataModule
from lrnn.pointcloud.detect import synthetic_scene
from lrnn.pointcloud.kitti import read_calibration
from lrnn.pointcloud.lit import LIONDetector
from pointcloud_testing import SMALL_LION

CLASSES = ["Car", "Pedestrian", "Cyclist"]
RANGE = (0.0, -16.0, -3.0, 32.0, 16.0, 1.0)
CALIBRATION = {
    "P2": "7 0 6 0 0 7 1 0 0 0 1 0",
    "R0_rect": "1 0 0 0 1 0 0 0 1",
    "Tr_velo_to_cam": "0 -1 0 0 0 0 -1 0 1 0 0 0",
}
CAR_LABEL = "Car 0.00 0 0 100 100 200 200 1.5 1.6 4.0 1.0 1.7 10.0 0.0\n"  # LiDAR (10, -1, -0.95), 100 px tall
NO_BOXES = {"boxes": torch.zeros(0, 7), "labels": torch.zeros(0, dtype=torch.long)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """spconv's CPU path needs one torch thread (tests/conftest.py)."""


def small_detector() -> LIONDetector:
    torch.manual_seed(0)
    return LIONDetector(
        SMALL_LION,
        CLASSES,
        RANGE,
        (0.4, 0.4, 0.5),
        bev_channels=(16, 32),
        bev_layers=(1, 1),
        bev_upsample_channels=16,
        head_options={"shared_channels": 16},
    )


def scene_cloud(seed: int = 0) -> torch.Tensor:
    return synthetic_scene(seed, RANGE, num_objects=4, beams=16, azimuth_steps=256).points


def batch_of(*scenes: dict) -> dict:
    return {key: [scene[key] for scene in scenes] for key in ("points", "boxes", "labels")}


def test_training_step_with_an_empty_cloud_first_a_cloud_outside_the_range_and_no_objects():
    outside = torch.tensor([[-5.0, 0.0, 0.0, 0.1], [50.0, 0.0, 0.0, 0.2], [5.0, 0.0, 9.0, 0.3]])
    batch = batch_of(
        {"points": torch.zeros(0, 4), **NO_BOXES},
        {"points": scene_cloud(), **NO_BOXES},
        {"points": outside, **NO_BOXES},
    )
    detector = small_detector()
    loss = detector.training_step(batch, 0)
    assert math.isfinite(loss.item())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in detector.backbone.parameters())
    detector.eval()
    detections = detector.detect(batch["points"])
    assert len(detections[0]["boxes"]) == len(detections[2]["boxes"]) == 0


def test_a_batch_with_no_point_in_range_trains_on_blank_maps():
    car = torch.tensor([[10.0, -1.0, -0.95, 4.0, 1.6, 1.5, 0.0]])
    batch = batch_of(
        {"points": torch.zeros(0, 4), "boxes": car, "labels": torch.zeros(1, dtype=torch.long)},
        {"points": torch.tensor([[-5.0, 0.0, 0.0, 0.1]]), **NO_BOXES},
    )
    detector = small_detector()
    predictions = detector(batch["points"])
    assert predictions["heatmap"].shape[:2] == (2, len(CLASSES))
    loss = detector.training_step(batch, 0)
    assert math.isfinite(loss.item())
    loss.backward()
    assert all(p.grad is None for p in detector.backbone.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in detector.head.parameters())
    detector.eval()
    assert all(len(found["boxes"]) == 0 for found in detector.detect(batch["points"]))


def write_kitti_frame(root, frame_id: str, points: torch.Tensor, label: str, calibration: dict) -> None:
    for folder in ("velodyne", "label_2", "calib"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    points.numpy().astype(np.float32).tofile(root / "velodyne" / f"{frame_id}.bin")
    (root / "label_2" / f"{frame_id}.txt").write_text(label)
    (root / "calib" / f"{frame_id}.txt").write_text("".join(f"{k}: {v}\n" for k, v in calibration.items()))


def test_kitti_folder_with_empty_outside_and_objectless_frames_fits_and_validates(tmp_path):
    root = tmp_path / "training"
    cloud = scene_cloud()
    frames = {
        "000000": (cloud, ""),  # no objects
        "000001": (torch.zeros(0, 4), CAR_LABEL),  # an empty cloud, a labelled car
        "000002": (cloud - torch.tensor([40.0, 0.0, 0.0, 0.0]), "DontCare -1 -1 -10 1 2 3 4 -1 -1 -1 -1 -1 -1 -10\n"),
        "000003": (cloud, CAR_LABEL),
    }
    for frame_id, (points, label) in frames.items():
        write_kitti_frame(root, frame_id, points, label, CALIBRATION)
    data = PointCloudDataModule(
        source="kitti",
        path=str(root),
        class_names=CLASSES,
        point_cloud_range=RANGE,
        batch_size=1,
        gt_sampling={"Car": 2},
    )
    data.setup("fit")
    samples = [data.splits["val"][index] for index in range(4)]
    assert [len(sample["points"]) for sample in samples[1:3]] == [0, 0]  # empty; every point outside, cropped
    assert [len(sample["boxes"]) for sample in samples] == [0, 1, 0, 1]
    assert [len(sample["kitti"]["names"]) for sample in samples] == [0, 1, 0, 1]
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=4,
        num_sanity_val_steps=0,
        logger=CSVLogger(tmp_path, name="edge", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    detector = small_detector()
    trainer.fit(detector, datamodule=data)  # one frame a batch: two batches hold no point in range
    (metrics,) = trainer.validate(detector, datamodule=data)
    assert trainer.global_step == 4 and math.isfinite(metrics["val/loss"])
    assert all(math.isfinite(value) for value in metrics.values())


@pytest.mark.parametrize(
    ("key", "values", "match"),
    [
        ("P2", "7 0 6 0 7 1 0 0 1", "P2 must hold 3x4 = 12 values, got 9"),
        ("R0_rect", "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1", "R0_rect must hold 3x3 = 9 values, got 16"),
        ("Tr_velo_to_cam", "0 -1 0 0 0 0 -1 0 1 0 0 0 0 0 0 1", "Tr_velo_to_cam must hold 3x4 = 12 values, got 16"),
        ("R0_rect", "1 0 0 0 1 0 0 0 one", r"R0_rect must hold numbers \(could not convert string to float: 'one'\)"),
    ],
)
def test_mismatched_calibration_names_the_matrix(tmp_path, key, values, match):
    path = tmp_path / "000000.txt"
    path.write_text("".join(f"{k}: {values if k == key else v}\n" for k, v in CALIBRATION.items()))
    with pytest.raises(ValueError, match=match):
        read_calibration(path)
