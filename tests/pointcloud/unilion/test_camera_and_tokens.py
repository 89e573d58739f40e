from pathlib import Path

import pytest
import torch
from lrnn.pointcloud.kitti import read_calibration, read_frame
from lrnn.pointcloud.unilion import CameraVoxelTokens, PinholeCamera, TemporalTokens, voxel_centres

KITTI = Path("../shared/data/kitti/training")
needs_kitti = pytest.mark.skipif(not KITTI.is_dir(), reason=f"the shared KITTI frames are not at {KITTI}")
RANGE = [0.0, -16.0, -3.0, 32.0, 16.0, 1.0]
VOXEL = [0.4, 0.4, 0.5]


def simple_camera() -> PinholeCamera:
    """A camera at the LiDAR origin looking along +x (camera z = LiDAR x, camera x = -LiDAR y, y = -LiDAR z)."""
    projection = torch.tensor([[50.0, 0.0, 40.0, 0.0], [0.0, 50.0, 12.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    lidar_to_camera = torch.tensor(
        [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )
    return PinholeCamera(projection.double(), lidar_to_camera.double())


@needs_kitti
def test_kitti_camera_round_trip_and_labelled_objects_project_into_their_2d_boxes():
    camera = PinholeCamera.from_kitti(read_calibration(KITTI / "calib" / "000001.txt"))
    points = torch.randn(50, 3, dtype=torch.float64) * 5 + torch.tensor([20.0, 0.0, 0.0], dtype=torch.float64)
    pixels, depth = camera.lidar_to_pixels(points)
    assert (depth > 0).all()
    torch.testing.assert_close(camera.pixels_to_lidar(pixels, depth), points)
    frame = read_frame(KITTI, "000001")
    labels = [line.split() for line in (KITTI / "label_2" / "000001.txt").read_text().splitlines()]
    boxes_2d = torch.tensor([[float(v) for v in fields[4:8]] for fields in labels if fields[0] != "DontCare"])
    centres, _ = camera.lidar_to_pixels(frame.boxes[:, :3])
    inside = (centres >= boxes_2d[:, :2] - 1) & (centres <= boxes_2d[:, 2:] + 1)
    assert inside.all(), (centres, boxes_2d)


def test_resized_camera_moves_pixel_centres_by_the_scale():
    camera, points = simple_camera(), torch.tensor([[10.0, 2.0, -1.0], [25.0, -4.0, 0.5]], dtype=torch.float64)
    pixels, depth = camera.lidar_to_pixels(points)
    small_pixels, small_depth = camera.resized(0.25).lidar_to_pixels(points)
    torch.testing.assert_close(small_pixels, 0.25 * (pixels + 0.5) - 0.5)
    torch.testing.assert_close(small_depth, depth)
    with pytest.raises(ValueError, match=r"projection \[3, 4\]"):
        PinholeCamera(torch.eye(3), torch.eye(4))


def test_camera_tokens_lie_at_the_predicted_depth_and_carry_the_pixels_weight():
    """With one sure depth bin and unit context, every pixel's token sits at that depth and weighs 1."""
    torch.manual_seed(0)
    lift = CameraVoxelTokens(
        8, RANGE, VOXEL, backbone="resnet10t", depth_min=4.0, depth_step=2.0, depth_bins=8, top_k=1
    )
    with torch.no_grad():
        lift.depth_and_context.weight.zero_()
        lift.depth_and_context.bias.copy_(torch.tensor([0.0] * 5 + [50.0] + [0.0] * 2 + [1.0] * 8))  # bin 5: 14 m
    camera = simple_camera()
    features, coords, depth_logits = lift(torch.randn(1, 3, 32, 96), [camera])
    assert depth_logits.shape == (1, 8, 1, 3) and features.shape == (len(coords), 8)
    assert len(torch.unique(coords, dim=0)) == len(coords)
    _, depth = camera.lidar_to_pixels(voxel_centres(coords, RANGE, VOXEL))
    assert ((depth - 14.0).abs() < 0.4).all(), depth
    torch.testing.assert_close(features.sum(0), torch.full((8,), 3.0), atol=1e-4, rtol=0)  # 3 pixels, all inside


@needs_kitti
def test_camera_tokens_on_a_kitti_image_are_in_the_grid_and_train_with_depth_supervision():
    from torchvision.io import read_image

    torch.manual_seed(0)
    frame = read_frame(KITTI, "000002")
    image = read_image(str(KITTI / "image_2" / "000002.png")).float().div(255)
    image = torch.nn.functional.interpolate(image[None], scale_factor=0.25, mode="bilinear")
    camera = PinholeCamera.from_kitti(frame.calibration).resized(0.25)
    lift = CameraVoxelTokens(8, RANGE, VOXEL, backbone="resnet10t", depth_bins=30, top_k=4)
    features, coords, depth_logits = lift(image, [camera])
    assert len(coords) > 30 and torch.isfinite(features).all()  # 3 x 10 feature pixels, 4 depths each
    grid_zyx = torch.tensor([8, 80, 80])
    assert (coords[:, 0] == 0).all() and (coords[:, 1:] >= 0).all() and (coords[:, 1:] < grid_zyx).all()
    loss = lift.depth_loss(depth_logits, [frame.points], [camera])
    assert loss.item() > 0
    (loss + features.square().mean()).backward()
    assert lift.depth_and_context.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in lift.image_backbone.parameters() if p.requires_grad)
    assert lift.depth_loss(depth_logits, [frame.points[:0]], [camera]).item() == 0.0


def test_temporal_tokens_follow_the_ego_motion_and_reset_on_a_new_scene_or_gap():
    temporal = TemporalTokens(4, RANGE, VOXEL, max_gap=2.0)
    coords = torch.tensor([[0, 2, 40, 10], [0, 3, 41, 60], [1, 2, 5, 79]], dtype=torch.int32)
    features = torch.randn(3, 4)
    pose_0 = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    out_features, out_coords = temporal(features, coords, pose_0, ["a", "b"], [0.0, 0.0])
    assert torch.equal(out_coords, coords)  # nothing remembered yet
    pose_1 = pose_0.clone()
    pose_1[:, 0, 3] = 1.2  # the ego moved 1.2 m (3 voxels) forward along x
    new = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.int32)
    out_features, out_coords = temporal(torch.randn(2, 4), new, pose_1, ["a", "b"], [0.5, 0.5])
    # slot 0: both previous voxels 3 cells back; slot 1: x 79 - 3 = 76
    expected = torch.tensor([[0, 2, 40, 7], [0, 3, 41, 57], [1, 2, 5, 76]], dtype=torch.int32)
    assert torch.equal(out_coords[2:], expected)
    torch.testing.assert_close(out_features[2:], temporal.fuse(features))
    out_features, out_coords = temporal(torch.randn(2, 4), new, pose_1, ["c", "b"], [1.0, 3.0])
    assert torch.equal(out_coords, new)  # slot 0 changed scene, slot 1 waited 2.5 s
    pose_far = pose_1.clone()
    pose_far[:, 0, 3] = 40.0  # the previous tokens fall behind the grid
    out_features, out_coords = temporal(torch.randn(2, 4), new, pose_far, ["c", "b"], [1.5, 3.5])
    assert torch.equal(out_coords, new)
    with pytest.raises(ValueError, match="a \\[4, 4\\] pose and a time per frame"):
        temporal(features, coords, pose_0[:1], ["a", "b"], [0.0, 0.0])
