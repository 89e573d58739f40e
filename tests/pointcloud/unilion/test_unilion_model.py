from pathlib import Path

import pytest
import torch
from lrnn.pointcloud.detect import synthetic_scene
from lrnn.pointcloud.kitti import read_frame
from lrnn.pointcloud.unilion import PinholeCamera, UniLION, footprint_masks
from pointcloud_testing import SMALL_LION

KITTI = Path("../shared/data/kitti/training")
needs_kitti = pytest.mark.skipif(not KITTI.is_dir(), reason=f"the shared KITTI frames are not at {KITTI}")
RANGE = [0.0, -16.0, -3.0, 32.0, 16.0, 1.0]
VOXEL = [0.4, 0.4, 0.5]


def small_unilion(**options) -> UniLION:
    torch.manual_seed(0)
    return UniLION(
        SMALL_LION, 3, RANGE, VOXEL, camera_options={"backbone": "resnet10t", "depth_bins": 30}, bev_channels=(16, 16),
        bev_layers=(0, 0), bev_upsample_channels=8, head_options={"shared_channels": 8}, seg_channels=8, **options,
    )  # fmt: skip


def losses(model: UniLION, outputs: dict, boxes: list, labels: list) -> torch.Tensor:
    detection, _ = model.detection_head.loss(outputs["detection"], boxes, labels)
    height, width = outputs["segmentation"].shape[2:]
    cell = [(RANGE[3] - RANGE[0]) / width, (RANGE[4] - RANGE[1]) / height]
    shape = (height, width)
    masks = torch.stack([footprint_masks(b, lab, 3, RANGE, cell, shape) for b, lab in zip(boxes, labels, strict=True)])
    return detection + model.segmentation_head.loss(outputs["segmentation"], masks)


@needs_kitti
def test_one_model_runs_lidar_time_camera_and_all_three_on_kitti_frames():
    from torchvision.io import read_image

    model = small_unilion()
    frames = [read_frame(KITTI, frame_id) for frame_id in ("000001", "000002")]
    points = [frame.points for frame in frames]
    images = torch.stack(
        [read_image(str(KITTI / "image_2" / f"{i}.png"))[:, :370, :1224].float().div(255) for i in ("000001", "000002")]
    )
    images = torch.nn.functional.interpolate(images, scale_factor=0.25, mode="bilinear")
    cameras = [PinholeCamera.from_kitti(frame.calibration).resized(0.25) for frame in frames]
    poses = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    time_inputs = {"poses": poses, "scenes": ["kitti-1", "kitti-2"], "times": [0.0, 0.0]}
    combos = {"L": {}, "LT": time_inputs, "LC": {"images": images, "cameras": cameras}}
    combos["LCT"] = {**combos["LC"], **time_inputs}
    labels = [torch.zeros(len(frame.boxes), dtype=torch.long) for frame in frames]
    counts = {}
    for name, inputs in combos.items():
        model.zero_grad()
        model.temporal_tokens.reset()
        if "T" in name:
            with torch.no_grad():
                model.tokens(points, **inputs)  # the previous frame (the same one again)
        outputs = model(points, **inputs)
        assert outputs["segmentation"].shape[:2] == (2, 3)
        assert (outputs["depth_logits"] is not None) == ("C" in name)
        loss = losses(model, outputs, [frame.boxes for frame in frames], labels)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for p in model.backbone.parameters())
        assert (model.camera_tokens.depth_and_context.weight.grad is not None) == ("C" in name)
        assert (model.temporal_tokens.fuse.weight.grad is not None) == ("T" in name)
        with torch.no_grad():
            counts[name] = len(model.tokens(points, **inputs)[0].features)
    # the same frame again adds no voxel (it folds into the current ones); camera tokens add voxels
    assert counts["LT"] == counts["L"] < counts["LC"] == counts["LCT"]


def test_synthetic_sequence_brings_the_previous_frame_into_the_current_one():
    model = small_unilion(temporal=True)
    model.eval()
    scene = synthetic_scene(3, RANGE, num_objects=4, beams=16, azimuth_steps=256)
    poses = torch.eye(4, dtype=torch.float64)[None]
    moved = poses.clone()
    moved[0, 0, 3] = 0.8  # the ego moved two voxels forward; the world points stay put
    shifted_points = scene.points.clone()
    shifted_points[:, 0] -= 0.8
    with torch.no_grad():
        model.temporal_tokens.reset()
        single = len(model.tokens([shifted_points])[0].features)
        model.tokens([scene.points], poses=poses, scenes=["s"], times=[0.0])
        both = model.tokens([shifted_points], poses=moved, scenes=["s"], times=[0.1])[0]
        model.temporal_tokens.reset()
        again = model.tokens([shifted_points], poses=moved, scenes=["s"], times=[0.2])[0]
    # static world: the previous frame's voxels mostly land on voxels the current frame has too
    assert single <= len(both.features) < 1.5 * single
    assert len(again.features) == single


def test_footprint_masks_cover_the_box_top_view():
    boxes = torch.tensor([[2.0, 0.0, -1.0, 1.6, 0.8, 1.5, 0.0], [10.1, 4.1, -1.0, 4.0, 2.0, 1.5, 1.5707963]])
    masks = footprint_masks(boxes, torch.tensor([0, 2]), 3, RANGE, [0.4, 0.4], (80, 80))
    assert masks.shape == (3, 80, 80) and not masks[1].any()
    assert masks[0].sum() == 4 * 2  # 1.6 x 0.8 m on 0.4 m cells
    assert masks[2].sum() == 5 * 10  # rotated a quarter turn: 2 m along x, 4 m along y


def test_images_without_a_camera_branch_and_empty_inputs_are_errors():
    model = UniLION(SMALL_LION, 3, RANGE, VOXEL, camera_options=None, temporal=False, bev_channels=(8, 8))
    points = [torch.rand(100, 4) * 10]
    with pytest.raises(ValueError, match="camera branch"):
        model(points, images=torch.rand(1, 3, 32, 96), cameras=[None])
    with pytest.raises(ValueError, match="temporal branch"):
        model(points, poses=torch.eye(4)[None], scenes=["a"], times=[0.0])
    with pytest.raises(ValueError, match="no token inside"):
        model([torch.full((10, 4), -50.0)])
    with pytest.raises(ValueError, match="non-empty list"):
        model([])
