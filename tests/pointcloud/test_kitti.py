import math
from pathlib import Path

import pytest
import torch
from lrnn.pointcloud.kitti import read_boxes, read_calibration, read_frame, read_points

KITTI = Path("../shared/data/kitti/training")
FRAMES = ("000000", "000001", "000002")
needs_kitti = pytest.mark.skipif(not KITTI.is_dir(), reason=f"the shared KITTI frames are not at {KITTI}")


def points_in_box(points: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """How many of ``points [P, >=3]`` lie inside the LiDAR-frame ``box [7]``."""
    x, y, z, dx, dy, dz, heading = box.tolist()
    shifted = points[:, :3] - torch.tensor([x, y, z])
    cos, sin = math.cos(heading), math.sin(heading)
    local_x = shifted[:, 0] * cos + shifted[:, 1] * sin
    local_y = -shifted[:, 0] * sin + shifted[:, 1] * cos
    inside = (local_x.abs() <= dx / 2) & (local_y.abs() <= dy / 2) & (shifted[:, 2].abs() <= dz / 2)
    return int(inside.sum())


@needs_kitti
def test_shared_frames_give_boxes_inside_the_range_holding_lidar_points():
    counts = {}
    for frame_id in FRAMES:
        frame = read_frame(KITTI, frame_id)
        assert frame.points.shape[1] == 4 and frame.points.dtype == torch.float32 and len(frame.points) > 10_000
        assert frame.boxes.shape == (len(frame.names), 7) and "DontCare" not in frame.names
        assert (frame.boxes[:, 0] > 0).all() and (frame.boxes[:, 0] < 70.4).all()
        assert (frame.boxes[:, 1].abs() < 40).all() and (frame.boxes[:, 2] > -3).all() and (frame.boxes[:, 2] < 1).all()
        for box, name in zip(frame.boxes, frame.names, strict=True):
            counts[(frame_id, name, round(float(box[0]), 1))] = points_in_box(frame.points, box)
    assert len(counts) == 6
    # every box holds points; all but the car at 59 m (9 points) hold more than 10
    assert min(counts.values()) >= 5 and sum(count > 10 for count in counts.values()) == 5, counts


@needs_kitti
def test_first_frame_pedestrian_matches_the_hand_converted_label():
    frame = read_frame(KITTI, "000000")
    assert frame.names == ["Pedestrian"]
    # label: h w l = 1.89 0.48 1.20, bottom centre (1.84, 1.47, 8.41) in the camera frame, ry = 0.01
    x, y, z, dx, dy, dz, heading = frame.boxes[0].tolist()
    assert (dx, dy, dz) == pytest.approx((1.20, 0.48, 1.89))
    assert heading == pytest.approx(-(0.01 + math.pi / 2))
    # camera x right, y down, z forward -> LiDAR x forward, y left, z up (about 0.27 m offset at this range)
    assert x == pytest.approx(8.41 + 0.27, abs=0.1) and y == pytest.approx(-1.84, abs=0.1)
    assert z == pytest.approx(-1.47 + 1.89 / 2 - 0.08, abs=0.1)


def test_missing_files_and_bad_calibration_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="000007.bin"):
        read_points(tmp_path / "000007.bin")
    calib = tmp_path / "calib.txt"
    calib.write_text("P2: " + " ".join(["1"] * 12) + "\nR0_rect: " + " ".join(["1"] * 12) + "\nTr_velo_to_cam: 1\n")
    with pytest.raises(ValueError, match="R0_rect must hold 3x3 = 9 values, got 12"):
        read_calibration(calib)
    calib.write_text("P2: " + " ".join(["1"] * 12) + "\n")
    with pytest.raises(ValueError, match="no R0_rect"):
        read_calibration(calib)
    (tmp_path / "odd.bin").write_bytes(b"\0" * 12)
    with pytest.raises(ValueError, match="multiple of 4"):
        read_points(tmp_path / "odd.bin")


def test_frame_with_only_dont_care_objects_gives_no_boxes(tmp_path):
    calib = tmp_path / "calib.txt"
    calib.write_text(
        "P2: " + " ".join(["0"] * 12) + "\nR0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0\n"
    )
    label = tmp_path / "label.txt"
    label.write_text("DontCare -1 -1 -10 1 2 3 4 -1 -1 -1 -1000 -1000 -1000 -10\n")
    boxes, names = read_boxes(label, read_calibration(calib))
    assert boxes.shape == (0, 7) and names == []
    label.write_text("Car 0 0 0 0 0 0 0 1.5 1.6 4.0 1.0 1.7 10.0 0.0\n")
    boxes, names = read_boxes(label, read_calibration(calib))
    torch.testing.assert_close(boxes, torch.tensor([[10.0, -1.0, -0.95, 4.0, 1.6, 1.5, -math.pi / 2]]))
    assert names == ["Car"]
